//! Signed commits: building them (payload, then a `gpgsig` header), writing them durably with
//! their objects, and taking them apart again for verification.

use crate::git::{self, ObjectId, ObjectKind, object_id, pack::PackObject};
use crate::model::CommitId;
use crate::signing::SigningKey;

use super::overlay::Overlay;
use super::{LEDGER_REF, Ledger, LedgerError, LedgerMeta, layout};

/// Splits a user id `Name <email>` into its parts.
fn identity(userid: &str) -> (String, String) {
    match (userid.find('<'), userid.rfind('>')) {
        (Some(lt), Some(gt)) if lt < gt => (
            userid[..lt].trim().to_owned(),
            userid[lt + 1..gt].trim().to_owned(),
        ),
        _ => (userid.trim().to_owned(), String::new()),
    }
}

/// Builds and signs a commit object. Returns its id and raw bytes.
pub(crate) fn signed_commit(
    key: &mut SigningKey,
    tree: ObjectId,
    parent: Option<ObjectId>,
    message: &str,
) -> Result<PackObject, LedgerError> {
    use gix::objs::WriteTo as _;
    let (name, email) = identity(key.userid());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let sig = gix::actor::Signature {
        name: name.into(),
        email: email.into(),
        time: gix::date::Time {
            seconds: now,
            offset: 0,
        },
    };
    let mut commit = gix::objs::Commit {
        tree,
        parents: parent.into_iter().collect(),
        author: sig.clone(),
        committer: sig,
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    };
    let mut payload = Vec::new();
    commit
        .write_to(&mut payload)
        .map_err(LedgerError::io("encoding a commit"))?;
    let signature = key.sign_detached(&payload)?;
    commit
        .extra_headers
        .push(("gpgsig".into(), signature.trim_end_matches('\n').into()));
    let mut data = Vec::with_capacity(payload.len() + signature.len() + 64);
    commit
        .write_to(&mut data)
        .map_err(LedgerError::io("encoding a commit"))?;
    let id = object_id(ObjectKind::Commit, &data);
    Ok(PackObject {
        kind: ObjectKind::Commit,
        id,
        data,
    })
}

/// Signs a commit over the overlay's tree, writes every new object as one durable pack, then
/// moves the ledger ref from `parent` by compare-and-swap.
pub(crate) fn commit_overlay(
    repo: &gix::Repository,
    overlay: Overlay<'_>,
    parent: Option<ObjectId>,
    key: &mut SigningKey,
    message: &str,
) -> Result<CommitId, LedgerError> {
    let (tree, mut objects) = overlay.finish();
    let commit = signed_commit(key, tree, parent, message)?;
    let id = commit.id;
    objects.push(commit);
    let pack_dir = repo.objects.store_ref().path().join("pack");
    std::fs::create_dir_all(&pack_dir).map_err(LedgerError::io("creating objects/pack"))?;
    git::pack::write_pack(&pack_dir, &objects).map_err(LedgerError::io("writing a pack"))?;
    let summary = message.lines().next().unwrap_or_default();
    git::compare_and_swap_ref(
        repo,
        LEDGER_REF,
        parent,
        id,
        &format!("seakeeper: {summary}"),
    )?;
    Ok(id
        .to_string()
        .parse()
        .expect("object ids are 40 hex digits"))
}

/// A commit taken apart for verification.
#[derive(Debug, Clone)]
pub struct RawCommit {
    /// The bytes that were signed: the commit without its `gpgsig` header.
    pub payload: Vec<u8>,
    /// The armored signature, if the commit has one.
    pub signature: Option<Vec<u8>>,
    /// The tree.
    pub tree: ObjectId,
    /// The parents.
    pub parents: Vec<ObjectId>,
    /// The message.
    pub message: String,
    /// Committer time, seconds since the epoch.
    pub time: i64,
}

/// Splits raw commit bytes into the signed payload and the signature, the way git does for
/// `verify-commit`.
pub fn parse_commit(id: &ObjectId, data: &[u8]) -> Result<RawCommit, LedgerError> {
    let corrupt = |what: &str| LedgerError::Corrupt(format!("commit {id}: {what}"));
    let decoded = gix::objs::CommitRef::from_bytes(data, gix::hash::Kind::Sha1)
        .map_err(|e| corrupt(&e.to_string()))?;
    let header_end = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(data.len(), |p| p + 1);
    let mut payload = Vec::with_capacity(data.len());
    let mut signature: Option<Vec<u8>> = None;
    let mut in_sig = false;
    for line in data[..header_end].split_inclusive(|&b| b == b'\n') {
        if in_sig && line.starts_with(b" ") {
            let sig = signature.as_mut().expect("in a signature");
            sig.extend_from_slice(&line[1..]);
            continue;
        }
        in_sig = false;
        if let Some(rest) = line.strip_prefix(b"gpgsig ") {
            if signature.is_some() {
                return Err(corrupt("more than one gpgsig header"));
            }
            signature = Some(rest.to_vec());
            in_sig = true;
            continue;
        }
        payload.extend_from_slice(line);
    }
    payload.extend_from_slice(&data[header_end..]);
    Ok(RawCommit {
        payload,
        signature,
        tree: decoded.tree(),
        parents: decoded.parents().collect(),
        message: String::from_utf8_lossy(decoded.message).into_owned(),
        time: decoded
            .committer()
            .map_err(|e| corrupt(&e.to_string()))?
            .seconds(),
    })
}

/// Writes a commit that changes the allowed signers. Signed by `key`, which must be allowed
/// before the change (the rule `verify` enforces).
pub(crate) fn rotate_keys(
    ledger: &Ledger,
    key: &mut SigningKey,
    add: &[Vec<u8>],
    remove: &[String],
) -> Result<CommitId, LedgerError> {
    let repo = ledger.repo();
    let tip = ledger.tip()?.ok_or(LedgerError::Empty)?;
    let snapshot = ledger.snapshot_at(tip)?;
    let mut meta = snapshot.meta()?;
    if !meta.signers.iter().any(|s| s == key.fingerprint()) {
        return Err(LedgerError::KeyNotAllowed {
            fingerprint: key.fingerprint().to_owned(),
            allowed: meta.signers.join(", "),
        });
    }
    let mut overlay = Overlay::new(repo, Some(snapshot.tree()));
    let sequence = put_chain_entry(
        &mut overlay,
        tip,
        snapshot.tree(),
        read_commit_message_sequence(repo, tip)?,
    )?;
    let mut added = Vec::new();
    for cert in add {
        let mut ring = crate::signing::Keyring::new();
        let fpr = ring.add_cert_bytes(cert, "new signer's cert")?;
        if !meta.signers.contains(&fpr) {
            meta.signers.push(fpr.clone());
            added.push(fpr.clone());
        }
        let path = layout::key_path(&fpr);
        if overlay.get(&path)?.is_none() {
            overlay.put_blob(&path, cert.clone())?;
        }
    }
    for fpr in remove {
        let before = meta.signers.len();
        meta.signers.retain(|s| s != fpr);
        if meta.signers.len() == before {
            return Err(LedgerError::Rotation(format!(
                "{fpr} is not an allowed signer"
            )));
        }
    }
    if meta.signers.is_empty() {
        return Err(LedgerError::Rotation(
            "refusing to remove the last allowed signer: nobody could write the ledger again"
                .into(),
        ));
    }
    if added.is_empty() && remove.is_empty() {
        return Err(LedgerError::Rotation("nothing to change".into()));
    }
    overlay.put_blob("LEDGER", meta.to_bytes())?;
    let mut message = String::from("Rotate ledger signing keys\n\n");
    for f in &added {
        message.push_str(&format!("Signer-Added: {f}\n"));
    }
    for f in remove {
        message.push_str(&format!("Signer-Removed: {f}\n"));
    }
    message.push_str(&sequence_trailer(sequence));
    commit_overlay(repo, overlay, Some(tip), key, &message)
}

/// Reads LEDGER from a tree.
pub(crate) fn meta_from(overlay: &mut Overlay<'_>) -> Result<LedgerMeta, LedgerError> {
    let bytes = overlay
        .read("LEDGER")?
        .ok_or_else(|| LedgerError::Corrupt("the tree has no LEDGER file".into()))?;
    LedgerMeta::parse(&bytes).map_err(LedgerError::Corrupt)
}

/// The trailer that numbers every ledger commit; the root commit is 0.
pub const SEQUENCE_TRAILER: &str = "Ledger-Sequence";

/// `Ledger-Sequence: N` and a newline.
pub(crate) fn sequence_trailer(sequence: u64) -> String {
    format!("{SEQUENCE_TRAILER}: {sequence}\n")
}

/// The sequence number a commit message states, if any.
pub fn message_sequence(message: &str) -> Option<u64> {
    message.lines().rev().find_map(|l| {
        l.strip_prefix(SEQUENCE_TRAILER)?
            .strip_prefix(": ")?
            .trim()
            .parse()
            .ok()
    })
}

/// The ledger commit `id`, read and parsed.
pub(crate) fn read_commit(
    repo: &gix::Repository,
    id: ObjectId,
) -> Result<super::RawCommit, LedgerError> {
    match git::read_object(repo, &id) {
        Ok(Some((gix::object::Kind::Commit, data))) => parse_commit(&id, &data),
        Ok(Some((kind, _))) => Err(LedgerError::Corrupt(format!(
            "{id} is a {kind}, expected a commit"
        ))),
        Ok(None) => Err(LedgerError::Corrupt(format!("commit {id} is missing"))),
        Err(message) => Err(LedgerError::Read {
            id: id.to_string(),
            message,
        }),
    }
}

/// The sequence number of a stored commit.
pub(crate) fn read_commit_message_sequence(
    repo: &gix::Repository,
    id: ObjectId,
) -> Result<u64, LedgerError> {
    let c = read_commit(repo, id)?;
    message_sequence(&c.message).ok_or_else(|| {
        LedgerError::Corrupt(format!("commit {id} has no {SEQUENCE_TRAILER} trailer"))
    })
}

/// Records `parent` (whose sequence number is `parent_sequence` and root tree `parent_tree`) in
/// the chain index and returns the sequence number of the commit being built.
pub(crate) fn put_chain_entry(
    overlay: &mut Overlay<'_>,
    parent: ObjectId,
    parent_tree: ObjectId,
    parent_sequence: u64,
) -> Result<u64, LedgerError> {
    overlay.put_blob(
        &layout::chain_path(parent_sequence),
        layout::chain_entry(&parent, &parent_tree).into_bytes(),
    )?;
    Ok(parent_sequence + 1)
}
