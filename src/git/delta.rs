//! Deltas between versions of a tree, for merging packs.
//!
//! The ledger rewrites the trees along a record's path in every commit, and a directory that
//! gains an entry an hour holds thousands: stored whole, each version costs its full size. When
//! packs are merged, [`tree_deltas`] pairs each version of a tree with the next version of the
//! same path, and [`encode`] writes the older as git's delta against the newer: copies of the
//! runs of entries the two share, and the other entries inserted. The newest versions stay
//! whole, so the writer and the usual reads never resolve a delta.
//! This is what `git repack` finds by a window search, found here by walking the commits, in
//! time proportional to what changed.

use std::collections::HashMap;

use super::ObjectId;

/// The longest chain of deltas merging builds (git's default `pack.depth`).
pub const MAX_DEPTH: u32 = 50;

/// A tree entry's bytes in its tree: `start..end`, and whether it names a tree, its name and id.
struct Entry<'a> {
    start: usize,
    end: usize,
    is_tree: bool,
    name: &'a [u8],
    id: ObjectId,
}

/// Splits a tree object into its entries; `None` if it is not a well-formed tree.
fn entries(data: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let space = at + data[at..].iter().position(|&b| b == b' ')?;
        let nul = space + data[space..].iter().position(|&b| b == 0)?;
        let end = nul + 1 + 20;
        let id = ObjectId::from(<[u8; 20]>::try_from(data.get(nul + 1..end)?).ok()?);
        out.push(Entry {
            start: at,
            end,
            is_tree: &data[at..space] == b"40000",
            name: &data[space + 1..nul],
            id,
        });
        at = end;
    }
    Some(out)
}

fn varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn copy(out: &mut Vec<u8>, mut offset: usize, mut len: usize) {
    while len > 0 {
        let n = len.min(0x10000);
        let mut cmd = 0x80u8;
        let mut args = Vec::with_capacity(7);
        for i in 0..4 {
            let b = (offset >> (8 * i)) as u8;
            if b != 0 {
                cmd |= 1 << i;
                args.push(b);
            }
        }
        // A size of 0x10000 is written as no size bytes at all.
        for i in 0..3 {
            let b = ((n & 0xffff) >> (8 * i)) as u8;
            if b != 0 {
                cmd |= 0x10 << i;
                args.push(b);
            }
        }
        out.push(cmd);
        out.extend_from_slice(&args);
        offset += n;
        len -= n;
    }
}

fn insert(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(127) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

/// git's delta that turns the tree `base` into the tree `target`: each entry of `target` that
/// `base` has is copied from it (neighbours in one copy), the rest is inserted. `None` if
/// either is not a well-formed tree.
pub fn encode(base: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    let base_entries = entries(base)?;
    let target_entries = entries(target)?;
    let at: HashMap<&[u8], usize> = base_entries
        .iter()
        .map(|e| (&base[e.start..e.end], e.start))
        .collect();
    let mut out = Vec::with_capacity(64);
    varint(&mut out, base.len());
    varint(&mut out, target.len());
    let mut run: Option<(usize, usize)> = None;
    let mut pending = 0..0;
    for e in &target_entries {
        let bytes = &target[e.start..e.end];
        match at.get(bytes) {
            Some(&offset) => {
                insert(&mut out, &target[pending.clone()]);
                pending = e.end..e.end;
                run = match run {
                    Some((s, l)) if s + l == offset => Some((s, l + bytes.len())),
                    other => {
                        if let Some((s, l)) = other {
                            copy(&mut out, s, l);
                        }
                        Some((offset, bytes.len()))
                    }
                };
            }
            None => {
                if let Some((s, l)) = run.take() {
                    copy(&mut out, s, l);
                }
                if pending.is_empty() {
                    pending = e.start..e.end;
                } else {
                    pending.end = e.end;
                }
            }
        }
    }
    insert(&mut out, &target[pending]);
    if let Some((s, l)) = run {
        copy(&mut out, s, l);
    }
    Some(out)
}

/// Applies a git delta; `None` if it does not fit `base` or is malformed.
pub fn apply(base: &[u8], delta: &[u8]) -> Option<Vec<u8>> {
    fn read_varint(d: &[u8], at: &mut usize) -> Option<usize> {
        let mut v = 0usize;
        let mut shift = 0;
        loop {
            let b = *d.get(*at)?;
            *at += 1;
            v |= usize::from(b & 0x7f).checked_shl(shift)?;
            shift += 7;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
    }
    let mut at = 0;
    if read_varint(delta, &mut at)? != base.len() {
        return None;
    }
    let size = read_varint(delta, &mut at)?;
    let mut out = Vec::with_capacity(size);
    while at < delta.len() {
        let cmd = delta[at];
        at += 1;
        if cmd & 0x80 != 0 {
            let mut offset = 0usize;
            for i in 0..4 {
                if cmd & (1 << i) != 0 {
                    offset |= usize::from(*delta.get(at)?) << (8 * i);
                    at += 1;
                }
            }
            let mut n = 0usize;
            for i in 0..3 {
                if cmd & (0x10 << i) != 0 {
                    n |= usize::from(*delta.get(at)?) << (8 * i);
                    at += 1;
                }
            }
            if n == 0 {
                n = 0x10000;
            }
            out.extend_from_slice(base.get(offset..offset.checked_add(n)?)?);
        } else if cmd != 0 {
            out.extend_from_slice(delta.get(at..at + usize::from(cmd))?);
            at += usize::from(cmd);
        } else {
            return None;
        }
    }
    (out.len() == size).then_some(out)
}

/// What the pairing needs to know of an object in the packs being merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored whole, as an object of this pack type (1 commit, 2 tree, 3 blob, 4 tag).
    Whole(u8),
    /// Stored as a delta against this object.
    Delta(ObjectId),
}

/// A delta found for a tree: its base and the delta's bytes.
#[derive(Debug, Clone)]
pub struct TreeDelta {
    /// The object the delta applies to.
    pub base: ObjectId,
    /// The delta.
    pub delta: Vec<u8>,
}

fn commit_tree_and_parent(data: &[u8]) -> Option<(ObjectId, Option<ObjectId>)> {
    let mut tree = None;
    let mut parent = None;
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() {
            break;
        }
        if let Some(hex) = line.strip_prefix(b"tree ") {
            tree = ObjectId::from_hex(hex).ok();
        } else if let Some(hex) = line.strip_prefix(b"parent ") {
            parent = parent.or_else(|| ObjectId::from_hex(hex).ok());
        }
    }
    Some((tree?, parent))
}

/// Finds deltas for the trees among `objects` (the packs being merged) that are stored whole:
/// for each commit among them whose first parent is among them too, each tree of the parent
/// that the commit changed becomes a delta against its new version, if the delta is less than
/// half its size (older versions rest on newer ones, as in git's packs). Chains stay acyclic
/// and at most [`MAX_DEPTH`] long. `read` gives an object's content (only objects among
/// `objects` are asked for); objects it cannot give are skipped, and stay as they were.
pub fn tree_deltas(
    objects: &HashMap<ObjectId, Stored>,
    read: &mut dyn FnMut(&ObjectId) -> Option<std::rc::Rc<Vec<u8>>>,
) -> HashMap<ObjectId, TreeDelta> {
    // The commits, newest last (and walked newest first, so that a version is paired with its
    // base before it becomes the base of the one before it).
    let mut commits: HashMap<ObjectId, (ObjectId, Option<ObjectId>)> = HashMap::new();
    for (id, stored) in objects {
        if *stored == Stored::Whole(1)
            && let Some(data) = read(id)
            && let Some(tp) = commit_tree_and_parent(&data)
        {
            commits.insert(*id, tp);
        }
    }
    let mut depth_in_set: HashMap<ObjectId, usize> = HashMap::new();
    for id in commits.keys() {
        let mut chain = vec![*id];
        let mut at = *id;
        let base = loop {
            match commits.get(&at).and_then(|c| c.1) {
                Some(p) if commits.contains_key(&p) && chain.len() <= commits.len() => {
                    if let Some(&d) = depth_in_set.get(&p) {
                        break d + 1;
                    }
                    chain.push(p);
                    at = p;
                }
                _ => break 0,
            }
        };
        for (i, c) in chain.iter().rev().enumerate() {
            depth_in_set.entry(*c).or_insert(base + i);
        }
    }
    let mut order: Vec<ObjectId> = commits.keys().copied().collect();
    order.sort_by_key(|c| (depth_in_set.get(c).copied().unwrap_or(0), *c));

    let mut found: HashMap<ObjectId, TreeDelta> = HashMap::new();
    let base_of = |found: &HashMap<ObjectId, TreeDelta>, id: &ObjectId| {
        found.get(id).map(|d| d.base).or(match objects.get(id) {
            Some(Stored::Delta(b)) => Some(*b),
            _ => None,
        })
    };
    // How long the longest chain of deltas resting on each object is: a new delta under it
    // makes all of them one longer.
    let mut above: HashMap<ObjectId, u32> = HashMap::new();
    let raise = |above: &mut HashMap<ObjectId, u32>,
                 found: &HashMap<ObjectId, TreeDelta>,
                 from: ObjectId,
                 height: u32| {
        let mut at = base_of(found, &from);
        let mut k = height + 1;
        while let Some(b) = at {
            let e = above.entry(b).or_insert(0);
            if *e >= k || k > 4 * MAX_DEPTH {
                break;
            }
            *e = k;
            at = base_of(found, &b);
            k += 1;
        }
    };
    for id in objects.keys() {
        raise(&mut above, &found, *id, 0);
    }
    // The delta chain below `id` (new deltas first, then those in the packs): its length, or
    // `None` if it reaches `avoid` (a delta there would close a cycle).
    let chain = |found: &HashMap<ObjectId, TreeDelta>, id: ObjectId, avoid: ObjectId| {
        let mut at = id;
        let mut depth = 0u32;
        loop {
            if at == avoid {
                return None;
            }
            match base_of(found, &at) {
                Some(b) if depth <= MAX_DEPTH => {
                    depth += 1;
                    at = b;
                }
                Some(_) => return Some(depth),
                None => return Some(depth),
            }
        }
    };
    for commit in order.iter().rev() {
        let (tree, parent) = commits[commit];
        // A parent outside the packs has its trees outside them too.
        let Some(&(parent_tree, _)) = parent.and_then(|p| commits.get(&p)) else {
            continue;
        };
        let mut pairs = vec![(tree, parent_tree)];
        while let Some((new, old)) = pairs.pop() {
            if new == old {
                continue;
            }
            // An older version already stored as a delta was paired by an earlier merge, and
            // so was everything under it: nothing to read again.
            if !objects.contains_key(&new) || !matches!(objects.get(&old), Some(Stored::Whole(_))) {
                continue;
            }
            let (Some(new_data), Some(old_data)) = (read(&new), read(&old)) else {
                continue;
            };
            // The older version becomes the delta, as git does: the newest versions, which
            // the writer and most reads need, stay whole.
            let pairable =
                objects.get(&old) == Some(&Stored::Whole(2)) && !found.contains_key(&old);
            let height = above.get(&old).copied().unwrap_or(0);
            if pairable
                && chain(&found, new, old).is_some_and(|d| d + 1 + height <= MAX_DEPTH)
                && let Some(delta) = encode(&new_data, &old_data)
                && delta.len() * 2 < old_data.len()
            {
                found.insert(old, TreeDelta { base: new, delta });
                raise(&mut above, &found, old, height);
            }
            let (Some(new_entries), Some(old_entries)) = (entries(&new_data), entries(&old_data))
            else {
                continue;
            };
            let old_trees: HashMap<&[u8], ObjectId> = old_entries
                .iter()
                .filter(|e| e.is_tree)
                .map(|e| (e.name, e.id))
                .collect();
            for e in new_entries.iter().filter(|e| e.is_tree) {
                if let Some(&o) = old_trees.get(e.name)
                    && o != e.id
                {
                    pairs.push((e.id, o));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, u8)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, id) in entries {
            out.extend_from_slice(format!("100644 {name}\0").as_bytes());
            out.extend_from_slice(&[*id; 20]);
        }
        out
    }

    #[test]
    fn tree_deltas_copy_what_stayed_and_insert_what_is_new() {
        let names: Vec<String> = (0..3000).map(|i| format!("build-{i:05}.yaml")).collect();
        let base_entries: Vec<(&str, u8)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let base = tree(&base_entries);
        // An entry added in the middle, one changed, one removed, one added at the end.
        let mut changed = base_entries.clone();
        changed.insert(1500, ("build-01499x.yaml", 9));
        changed[10].1 = 7;
        changed.remove(2000);
        changed.push(("zzz", 3));
        let target = tree(&changed);
        let delta = encode(&base, &target).unwrap();
        assert_eq!(apply(&base, &delta).unwrap(), target);
        assert!(delta.len() < 200, "{} bytes", delta.len());
        // Whatever the two trees, the delta rebuilds the target.
        for (b, t) in [
            (tree(&[]), tree(&[("a", 1)])),
            (tree(&[("a", 1)]), tree(&[])),
            (tree(&[("a", 1), ("b", 2)]), tree(&[("b", 2), ("a", 1)])),
            (base.clone(), tree(&[])),
        ] {
            let d = encode(&b, &t).unwrap();
            assert_eq!(apply(&b, &d).unwrap(), t);
        }
        // A copy longer than 64 KiB is split.
        let big: Vec<(&str, u8)> = names.iter().map(|n| (n.as_str(), 2)).collect();
        let big = tree(&[big.as_slice(), &big].concat());
        let d = encode(&big, &big).unwrap();
        assert_eq!(apply(&big, &d).unwrap(), big);
        assert!(encode(b"not a tree", &base).is_none());
    }
}
