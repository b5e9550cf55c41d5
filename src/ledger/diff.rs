//! What one ledger commit changed relative to its parent: a walk over both trees that skips
//! every subtree whose id did not change, so its cost follows the size of the change, not the
//! size of the ledger.

use crate::git::ObjectId;
use crate::git::tree::{self, TreeEntry};

use super::LedgerError;
use super::overlay::read_tree;

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
    let old_entries = match old {
        Some(id) => read_tree(repo, &id)?,
        None => Vec::new(),
    };
    let new_entries = match new {
        Some(id) => read_tree(repo, &id)?,
        None => Vec::new(),
    };
    // Trees are small (the ledger is sharded), so pairing entries by name through a map is
    // cheap and avoids git's subtle order of directories against files.
    let mut names: std::collections::BTreeMap<&[u8], (Option<&TreeEntry>, Option<&TreeEntry>)> =
        std::collections::BTreeMap::new();
    for e in &old_entries {
        names.entry(e.name.as_slice()).or_default().0 = Some(e);
    }
    for e in &new_entries {
        names.entry(e.name.as_slice()).or_default().1 = Some(e);
    }
    for (a, b) in names.into_values() {
        pair(repo, a, b, prefix, out)?;
    }
    Ok(())
}

fn pair(
    repo: &gix::Repository,
    old: Option<&TreeEntry>,
    new: Option<&TreeEntry>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> Result<(), LedgerError> {
    let name = old
        .or(new)
        .map(|e| e.name.as_slice())
        .expect("one side exists");
    let path = join(prefix, name);
    fn tree_id(e: Option<&TreeEntry>) -> Option<ObjectId> {
        e.filter(|e| e.mode == tree::MODE_TREE).map(|e| e.oid)
    }
    fn blob(e: Option<&TreeEntry>) -> Option<&TreeEntry> {
        e.filter(|e| e.mode != tree::MODE_TREE)
    }
    if old.map(|e| (e.mode, e.oid)) == new.map(|e| (e.mode, e.oid)) {
        return Ok(());
    }
    let (old_tree, new_tree) = (tree_id(old), tree_id(new));
    if old_tree.is_some() || new_tree.is_some() {
        walk(repo, old_tree, new_tree, &path, out)?;
    }
    match (blob(old), blob(new)) {
        (None, Some(b)) => out.push(Change::Added {
            path,
            oid: b.oid,
            mode: b.mode,
        }),
        (Some(_), Some(b)) => out.push(Change::Modified {
            path,
            oid: b.oid,
            mode: b.mode,
        }),
        (Some(_), None) => out.push(Change::Deleted { path }),
        (None, None) => {}
    }
    Ok(())
}
