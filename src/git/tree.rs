//! Git tree objects: decoding, encoding and git's entry order.
//!
//! Written by hand (it is a small format) so that ledger code can edit trees in memory and
//! write them into its own packs without a round trip through the object database.

use std::cmp::Ordering;

use super::ObjectId;

/// Mode of a regular file entry.
pub const MODE_BLOB: u32 = 0o100644;
/// Mode of a subdirectory entry.
pub const MODE_TREE: u32 = 0o040000;

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Git file mode (`MODE_BLOB`, `MODE_TREE`, or another git mode such as 100755).
    pub mode: u32,
    /// File name, without slashes.
    pub name: Vec<u8>,
    /// The object the entry points at.
    pub oid: ObjectId,
}

impl TreeEntry {
    /// Whether the entry is a subdirectory.
    pub fn is_tree(&self) -> bool {
        self.mode == MODE_TREE
    }
}

/// A malformed tree object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed tree object: {0}")]
pub struct TreeDecodeError(pub &'static str);

/// Decodes a raw tree object (entries must be in git's order, as git itself requires).
pub fn decode(data: &[u8]) -> Result<Vec<TreeEntry>, TreeDecodeError> {
    Ok(decode_sorted(data)?
        .into_iter()
        .map(|e| TreeEntry {
            mode: e.mode,
            name: e.name.to_vec(),
            oid: e.oid,
        })
        .collect())
}

/// A tree entry that borrows its name from the raw tree object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Git file mode.
    pub mode: u32,
    /// File name.
    pub name: &'a [u8],
    /// The object the entry points at.
    pub oid: ObjectId,
}

impl EntryRef<'_> {
    /// Whether the entry is a subdirectory.
    pub fn is_tree(&self) -> bool {
        self.mode == MODE_TREE
    }
}

/// Decodes a raw tree without copying names, and checks that entries are in git's order
/// (which comparisons between two trees rely on).
pub fn decode_sorted(mut data: &[u8]) -> Result<Vec<EntryRef<'_>>, TreeDecodeError> {
    let mut out: Vec<EntryRef<'_>> = Vec::new();
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or(TreeDecodeError("entry without a mode"))?;
        let mode_str =
            std::str::from_utf8(&data[..sp]).map_err(|_| TreeDecodeError("mode is not ASCII"))?;
        let mode =
            u32::from_str_radix(mode_str, 8).map_err(|_| TreeDecodeError("mode is not octal"))?;
        data = &data[sp + 1..];
        let nul = data
            .iter()
            .position(|&b| b == 0)
            .ok_or(TreeDecodeError("entry name is not terminated"))?;
        let (name, rest) = data.split_at(nul);
        if name.is_empty() || name.contains(&b'/') {
            return Err(TreeDecodeError("entry name is empty or holds a slash"));
        }
        data = &rest[1..];
        if data.len() < 20 {
            return Err(TreeDecodeError("entry id is truncated"));
        }
        let mut id = [0u8; 20];
        id.copy_from_slice(&data[..20]);
        data = &data[20..];
        let entry = EntryRef {
            mode,
            name,
            oid: ObjectId::from(id),
        };
        if let Some(prev) = out.last()
            && git_order(prev.name, prev.is_tree(), entry.name, entry.is_tree()) != Ordering::Less
        {
            return Err(TreeDecodeError(
                "entries are not sorted in git order, or repeat",
            ));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Finds the entry called `name` in a raw tree object without decoding the rest.
pub fn find(mut data: &[u8], name: &[u8]) -> Result<Option<(u32, ObjectId)>, TreeDecodeError> {
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or(TreeDecodeError("entry without a mode"))?;
        let mode_bytes = &data[..sp];
        data = &data[sp + 1..];
        let nul = data
            .iter()
            .position(|&b| b == 0)
            .ok_or(TreeDecodeError("entry name is not terminated"))?;
        let entry_name = &data[..nul];
        data = &data[nul + 1..];
        if data.len() < 20 {
            return Err(TreeDecodeError("entry id is truncated"));
        }
        if entry_name == name {
            let mode_str = std::str::from_utf8(mode_bytes)
                .map_err(|_| TreeDecodeError("mode is not ASCII"))?;
            let mode = u32::from_str_radix(mode_str, 8)
                .map_err(|_| TreeDecodeError("mode is not octal"))?;
            let mut id = [0u8; 20];
            id.copy_from_slice(&data[..20]);
            return Ok(Some((mode, ObjectId::from(id))));
        }
        data = &data[20..];
    }
    Ok(None)
}

/// Git's order of tree entries: by name, where a directory's name compares as if it ended
/// in `/`.
pub fn git_order(a_name: &[u8], a_is_tree: bool, b_name: &[u8], b_is_tree: bool) -> Ordering {
    let common = a_name.len().min(b_name.len());
    match a_name[..common].cmp(&b_name[..common]) {
        Ordering::Equal => {}
        other => return other,
    }
    let a_next = a_name.get(common).copied().or(a_is_tree.then_some(b'/'));
    let b_next = b_name.get(common).copied().or(b_is_tree.then_some(b'/'));
    a_next.cmp(&b_next)
}

/// Encodes entries into a raw tree object, sorting them into git's order first.
pub fn encode(entries: &mut [TreeEntry]) -> Vec<u8> {
    entries.sort_by(|a, b| git_order(&a.name, a.is_tree(), &b.name, b.is_tree()));
    let mut refs: Vec<EntryRef<'_>> = entries
        .iter()
        .map(|e| EntryRef {
            mode: e.mode,
            name: &e.name,
            oid: e.oid,
        })
        .collect();
    encode_refs(&mut refs)
}

/// [`encode`] for borrowed entries (no allocation per entry).
pub fn encode_refs(entries: &mut [EntryRef<'_>]) -> Vec<u8> {
    entries.sort_by(|a, b| git_order(a.name, a.is_tree(), b.name, b.is_tree()));
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.name.len() + 28).sum());
    for e in entries.iter() {
        if e.mode == MODE_TREE {
            out.extend_from_slice(b"40000");
        } else {
            // The mode in octal, without allocating.
            let mut digits = [0u8; 11];
            let mut i = digits.len();
            let mut m = e.mode;
            loop {
                i -= 1;
                digits[i] = b'0' + (m & 7) as u8;
                m >>= 3;
                if m == 0 {
                    break;
                }
            }
            out.extend_from_slice(&digits[i..]);
        }
        out.push(b' ');
        out.extend_from_slice(e.name);
        out.push(0);
        out.extend_from_slice(e.oid.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_sort_as_if_slash_terminated() {
        let id = ObjectId::null(gix::hash::Kind::Sha1);
        let mut entries = vec![
            TreeEntry {
                mode: MODE_TREE,
                name: b"foo".to_vec(),
                oid: id,
            },
            TreeEntry {
                mode: MODE_BLOB,
                name: b"foo.yaml".to_vec(),
                oid: id,
            },
            TreeEntry {
                mode: MODE_BLOB,
                name: b"foo0".to_vec(),
                oid: id,
            },
        ];
        let raw = encode(&mut entries);
        let names: Vec<_> = entries.iter().map(|e| e.name.clone()).collect();
        assert_eq!(
            names,
            vec![b"foo.yaml".to_vec(), b"foo".to_vec(), b"foo0".to_vec()]
        );
        assert_eq!(decode(&raw).unwrap(), entries);
        assert!(raw.starts_with(b"100644 foo.yaml\0"));
        let borrowed = decode_sorted(&raw).unwrap();
        assert_eq!(borrowed.len(), 3);
        assert_eq!(
            find(&raw, b"foo0").unwrap().map(|(m, _)| m),
            Some(MODE_BLOB)
        );
        assert_eq!(find(&raw, b"nope").unwrap(), None);
        // The same entries out of order are refused, so two trees can be merged in one pass.
        let mut unsorted = Vec::new();
        for e in entries.iter().rev() {
            unsorted.extend_from_slice(format!("{:o} ", e.mode).as_bytes());
            unsorted.extend_from_slice(&e.name);
            unsorted.push(0);
            unsorted.extend_from_slice(e.oid.as_bytes());
        }
        assert!(decode_sorted(&unsorted).is_err());
    }
}
