//! What one ledger commit changed relative to its parent: a walk over both trees that skips
//! every subtree whose id did not change, so its cost follows the size of the change, not the
//! size of the ledger.

use crate::git::ObjectId;
use crate::git::tree::{self, EntryRef};

use super::LedgerError;
use super::overlay::read_raw_tree;

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new file.
    Added {
        path: String,
        oid: ObjectId,
        mode: u32,
    },
    /// A file whose content changed.
    Modified {
        path: String,
        oid: ObjectId,
        mode: u32,
    },
    /// A file that is gone.
    Deleted { path: String },
}

/// Files changed from `old` (or an empty tree) to `new`, in path order.
pub fn diff_trees(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: ObjectId,
) -> Result<Vec<Change>, LedgerError> {
    let mut out = Vec::new();
    walk(repo, old, Some(new), "", &mut out)?;
    Ok(out)
}

fn join(prefix: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if prefix.is_empty() {
        name.into_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

fn raw_tree(repo: &gix::Repository, id: Option<ObjectId>) -> Result<Vec<u8>, LedgerError> {
    id.map_or(Ok(Vec::new()), |id| read_raw_tree(repo, &id))
}

fn walk(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> Result<(), LedgerError> {
    if old == new {
        return Ok(());
    }
    let (old_raw, new_raw) = (raw_tree(repo, old)?, raw_tree(repo, new)?);
    let decode = |raw, id: Option<ObjectId>| {
        tree::decode_sorted(raw).map_err(|e| {
            LedgerError::Corrupt(format!(
                "tree {}: {e}",
                id.map(|i| i.to_string()).unwrap_or_default()
            ))
        })
    };
    let (a, b) = (decode(&old_raw, old)?, decode(&new_raw, new)?);
    // Both sides are in git order, so one merge pass pairs entries with the same name and
    // kind; a file and a directory of the same name are a deletion and an addition.
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => tree::git_order(x.name, x.is_tree(), y.name, y.is_tree()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Equal => {
                pair(repo, Some(&a[i]), Some(&b[j]), prefix, out)?;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                pair(repo, Some(&a[i]), None, prefix, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                pair(repo, None, Some(&b[j]), prefix, out)?;
                j += 1;
            }
        }
    }
    Ok(())
}

fn pair(
    repo: &gix::Repository,
    old: Option<&EntryRef<'_>>,
    new: Option<&EntryRef<'_>>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> Result<(), LedgerError> {
    if old.map(|e| (e.mode, e.oid)) == new.map(|e| (e.mode, e.oid)) {
        return Ok(());
    }
    let name = old.or(new).map(|e| e.name).expect("one side exists");
    let path = join(prefix, name);
    let tree_id = |e: Option<&EntryRef<'_>>| e.filter(|e| e.is_tree()).map(|e| e.oid);
    let (old_tree, new_tree) = (tree_id(old), tree_id(new));
    if old_tree.is_some() || new_tree.is_some() {
        walk(repo, old_tree, new_tree, &path, out)?;
    }
    let blob = |e: Option<&EntryRef<'_>>| e.filter(|e| !e.is_tree()).map(|e| (e.oid, e.mode));
    match (blob(old), blob(new)) {
        (None, Some((oid, mode))) => out.push(Change::Added { path, oid, mode }),
        (Some(_), Some((oid, mode))) => out.push(Change::Modified { path, oid, mode }),
        (Some(_), None) => out.push(Change::Deleted { path }),
        (None, None) => {}
    }
    Ok(())
}
