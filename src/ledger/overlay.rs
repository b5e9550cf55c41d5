//! An in-memory edit of a ledger tree: reads fall through to the object database, writes stay
//! in memory until [`Overlay::finish`] turns them into new tree and blob objects for one pack.

use std::collections::{BTreeMap, HashMap};

use crate::git::tree::{self, MODE_BLOB, MODE_TREE, TreeEntry};
use crate::git::{ObjectId, ObjectKind, object_id, pack::PackObject, read_object};

use super::LedgerError;

enum Slot {
    /// An entry of a stored tree, not touched.
    Stored { mode: u32, oid: ObjectId },
    /// A blob written in this overlay.
    Blob(ObjectId),
    /// A directory we descended into.
    Dir(Box<Dir>),
}

/// A directory of the edit. Its stored tree stays in its raw form (one allocation however many
/// entries it has: a ledger's hour directory holds hundreds of builds); only the entries read
/// or written through the overlay are kept by name.
struct Dir {
    base: Option<ObjectId>,
    /// The stored tree's raw object, read on first use.
    raw: Option<Vec<u8>>,
    /// Entries looked at or written; the stored tree's other entries are unchanged.
    touched: BTreeMap<Vec<u8>, Slot>,
    dirty: bool,
}

impl Dir {
    fn new(base: Option<ObjectId>) -> Dir {
        Dir {
            base,
            raw: None,
            touched: BTreeMap::new(),
            dirty: false,
        }
    }

    /// The entry called `name`, from the edits or else the stored tree.
    fn slot(
        &mut self,
        repo: &gix::Repository,
        name: &str,
    ) -> Result<Option<&mut Slot>, LedgerError> {
        if !self.touched.contains_key(name.as_bytes()) {
            let Some(base) = self.base else {
                return Ok(None);
            };
            if self.raw.is_none() {
                let raw = read_raw_tree(repo, &base)?;
                // Checked once here: writing the directory back relies on it.
                tree::decode_sorted(&raw)
                    .map_err(|e| LedgerError::Corrupt(format!("tree {base}: {e}")))?;
                self.raw = Some(raw);
            }
            let raw = self.raw.as_deref().expect("just read");
            let Some((mode, oid)) = tree::find(raw, name.as_bytes())
                .map_err(|e| LedgerError::Corrupt(format!("tree {base}: {e}")))?
            else {
                return Ok(None);
            };
            self.touched
                .insert(name.as_bytes().to_vec(), Slot::Stored { mode, oid });
        }
        Ok(self.touched.get_mut(name.as_bytes()))
    }
}

/// What a path resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A blob with this id.
    Blob(ObjectId),
    /// A directory.
    Tree,
}

/// The raw bytes of a tree object.
pub(crate) fn read_raw_tree(repo: &gix::Repository, id: &ObjectId) -> Result<Vec<u8>, LedgerError> {
    match read_object(repo, id) {
        Ok(Some((gix::object::Kind::Tree, data))) => Ok(data),
        Ok(Some((kind, _))) => Err(LedgerError::Corrupt(format!(
            "{id} is a {kind}, expected a tree"
        ))),
        Ok(None) => Err(LedgerError::Corrupt(format!("tree {id} is missing"))),
        Err(message) => Err(LedgerError::Read {
            id: id.to_string(),
            message,
        }),
    }
}

/// A decoded tree object.
pub(crate) fn read_tree(
    repo: &gix::Repository,
    id: &ObjectId,
) -> Result<Vec<TreeEntry>, LedgerError> {
    tree::decode(&read_raw_tree(repo, id)?)
        .map_err(|e| LedgerError::Corrupt(format!("tree {id}: {e}")))
}

pub(crate) fn read_blob(repo: &gix::Repository, id: &ObjectId) -> Result<Vec<u8>, LedgerError> {
    match read_object(repo, id) {
        Ok(Some((gix::object::Kind::Blob, data))) => Ok(data),
        Ok(Some((kind, _))) => Err(LedgerError::Corrupt(format!(
            "{id} is a {kind}, expected a blob"
        ))),
        Ok(None) => Err(LedgerError::Corrupt(format!("blob {id} is missing"))),
        Err(message) => Err(LedgerError::Read {
            id: id.to_string(),
            message,
        }),
    }
}

/// An editable view of a tree.
pub(crate) struct Overlay<'r> {
    repo: &'r gix::Repository,
    root: Dir,
    blobs: HashMap<ObjectId, Vec<u8>>,
}

impl<'r> Overlay<'r> {
    /// An overlay over `base` (or over an empty tree).
    pub fn new(repo: &'r gix::Repository, base: Option<ObjectId>) -> Overlay<'r> {
        Overlay {
            repo,
            root: Dir::new(base),
            blobs: HashMap::new(),
        }
    }

    /// Resolves `path` (slash-separated, no leading slash).
    pub fn get(&mut self, path: &str) -> Result<Option<Found>, LedgerError> {
        let repo = self.repo;
        let mut dir = &mut self.root;
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            let Some(slot) = dir.slot(repo, part)? else {
                return Ok(None);
            };
            let last = parts.peek().is_none();
            match slot {
                Slot::Blob(oid) => return Ok(last.then_some(Found::Blob(*oid))),
                Slot::Stored { mode, oid } if *mode != MODE_TREE => {
                    return Ok(last.then_some(Found::Blob(*oid)));
                }
                Slot::Stored { oid, .. } => {
                    if last {
                        return Ok(Some(Found::Tree));
                    }
                    *slot = Slot::Dir(Box::new(Dir::new(Some(*oid))));
                    let Slot::Dir(d) = slot else {
                        unreachable!("just set")
                    };
                    dir = d;
                }
                Slot::Dir(d) => {
                    if last {
                        return Ok(Some(Found::Tree));
                    }
                    dir = d;
                }
            }
        }
        Ok(Some(Found::Tree))
    }

    /// The bytes of the blob at `path`, if there is one.
    pub fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        match self.get(path)? {
            Some(Found::Blob(oid)) => match self.blobs.get(&oid) {
                Some(data) => Ok(Some(data.clone())),
                None => read_blob(self.repo, &oid).map(Some),
            },
            _ => Ok(None),
        }
    }

    /// Writes a blob at `path`, replacing a blob there. Fails if a directory is in the way.
    pub fn put_blob(&mut self, path: &str, data: Vec<u8>) -> Result<ObjectId, LedgerError> {
        let oid = object_id(ObjectKind::Blob, &data);
        self.blobs.entry(oid).or_insert(data);
        self.put_blob_id(path, oid)?;
        Ok(oid)
    }

    /// Points `path` at a blob that exists already (in the repository or this overlay).
    pub fn put_blob_id(&mut self, path: &str, oid: ObjectId) -> Result<(), LedgerError> {
        let repo = self.repo;
        let mut dir = &mut self.root;
        let parts: Vec<&str> = path.split('/').collect();
        let (name, dirs) = parts.split_last().expect("split yields at least one part");
        for part in dirs {
            dir.dirty = true;
            if dir.slot(repo, part)?.is_none() {
                dir.touched.insert(
                    part.as_bytes().to_vec(),
                    Slot::Dir(Box::new(Dir::new(None))),
                );
            }
            let slot = dir.slot(repo, part)?.expect("present");
            match slot {
                Slot::Stored { mode, oid } if *mode == MODE_TREE => {
                    *slot = Slot::Dir(Box::new(Dir::new(Some(*oid))));
                }
                Slot::Stored { .. } | Slot::Blob(_) => {
                    return Err(LedgerError::Corrupt(format!(
                        "cannot write {path}: {part} is a file"
                    )));
                }
                Slot::Dir(_) => {}
            }
            let Slot::Dir(d) = slot else {
                unreachable!("made a directory above")
            };
            dir = d;
        }
        dir.dirty = true;
        match dir.slot(repo, name)? {
            Some(Slot::Dir(_))
            | Some(Slot::Stored {
                mode: MODE_TREE, ..
            }) => Err(LedgerError::Corrupt(format!(
                "cannot write {path}: it is a directory"
            ))),
            Some(slot) => {
                *slot = Slot::Blob(oid);
                Ok(())
            }
            None => {
                dir.touched
                    .insert(name.as_bytes().to_vec(), Slot::Blob(oid));
                Ok(())
            }
        }
    }

    /// Turns the edits into objects. Returns the root tree id and every new object.
    pub fn finish(self) -> (ObjectId, Vec<PackObject>) {
        let mut out = Vec::new();
        let Overlay {
            root, mut blobs, ..
        } = self;
        let root_id = Self::write_dir(root, &mut blobs, &mut out).unwrap_or_else(|| {
            let data = tree::encode_refs(&mut []);
            let id = object_id(ObjectKind::Tree, &data);
            out.push(PackObject {
                kind: ObjectKind::Tree,
                id,
                data,
            });
            id
        });
        (root_id, out)
    }

    /// Writes a directory; `None` if it ended up empty.
    fn write_dir(
        dir: Dir,
        blobs: &mut HashMap<ObjectId, Vec<u8>>,
        out: &mut Vec<PackObject>,
    ) -> Option<ObjectId> {
        if !dir.dirty {
            return dir.base;
        }
        // The edited entries, in byte order of their names (the map's order).
        let mut edited: Vec<(Vec<u8>, u32, ObjectId)> = Vec::with_capacity(dir.touched.len());
        let mut names: Vec<Vec<u8>> = Vec::new();
        for (name, slot) in dir.touched {
            match slot {
                Slot::Stored { mode, oid } => edited.push((name, mode, oid)),
                Slot::Blob(oid) => {
                    if let Some(data) = blobs.remove(&oid) {
                        out.push(PackObject {
                            kind: ObjectKind::Blob,
                            id: oid,
                            data,
                        });
                    }
                    edited.push((name, MODE_BLOB, oid));
                }
                Slot::Dir(d) => match Self::write_dir(*d, blobs, out) {
                    Some(oid) => edited.push((name, MODE_TREE, oid)),
                    // An emptied directory is left out (and must not fall back to the stored one).
                    None => names.push(name),
                },
            }
        }
        let is_edited = |name: &[u8]| {
            edited
                .binary_search_by(|(n, _, _)| n.as_slice().cmp(name))
                .is_ok()
                || names.iter().any(|n| n == name)
        };
        // A dirty directory with a base has read its raw tree (every edit looks the name up).
        let stored = match &dir.raw {
            Some(raw) => tree::decode_sorted(raw).expect("checked when it was read"),
            None => Vec::new(),
        };
        let mut entries: Vec<tree::EntryRef<'_>> =
            stored.into_iter().filter(|e| !is_edited(e.name)).collect();
        entries.extend(edited.iter().map(|(name, mode, oid)| tree::EntryRef {
            mode: *mode,
            name,
            oid: *oid,
        }));
        if entries.is_empty() {
            return None;
        }
        let data = tree::encode_refs(&mut entries);
        let id = object_id(ObjectKind::Tree, &data);
        out.push(PackObject {
            kind: ObjectKind::Tree,
            id,
            data,
        });
        Some(id)
    }
}
