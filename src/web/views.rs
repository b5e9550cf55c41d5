//! What each page shows, read from the ledger, the blob store and the daemon's status: plain
//! serializable values, the same for the HTML page and its JSON twin under `/api/`. Reading
//! only; a name from the URL is parsed into its newtype before anything is read.

use std::path::Path;

use serde::Serialize;

use crate::daemon::Status;
use crate::ledger::verify::History;
use crate::ledger::{Ledger, LedgerError, Trace};
use crate::model::record::{BuildRequest, BuildResult, Landing};
use crate::model::{BuildId, ChangeNumber, KeyRole};

/// A ledger commit that holds one of a page's records.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerRef {
    /// The record's kind (`build-request`, ...).
    pub record: String,
    /// Its path in the ledger.
    pub path: String,
    /// The commit that added it.
    pub commit: String,
}

/// A job of a build.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Its name.
    pub name: String,
    /// `queued`, `pending`, `running`, or how it ended.
    pub status: String,
    /// How long it ran, once ended.
    pub duration_ms: Option<u64>,
    /// When it was first seen running (while it runs).
    pub started_at: Option<String>,
    /// Its stored log's digest.
    pub log: Option<String>,
    /// Its attempt (for the live console's address).
    pub attempt: u32,
    /// The jobs of the build it needed (from the result).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// The image built in the build it ran in, by digest (from the result).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// `/builds/<id>`.
#[derive(Debug, Clone, Serialize)]
pub struct BuildView {
    /// The build.
    pub build_id: String,
    /// Its request.
    pub request: BuildRequest,
    /// Its result, once recorded.
    pub result: Option<BuildResult>,
    /// Its landing, for a gate build that landed.
    pub landing: Option<Landing>,
    /// Its jobs (from the result, or from the daemon while it runs).
    pub jobs: Vec<JobView>,
    /// Whether the daemon has it in flight.
    pub in_flight: bool,
    /// The traces of what it produced (attestations, promotions).
    pub artifacts: Vec<Trace>,
    /// The ledger commits of its records.
    pub ledger_commits: Vec<LedgerRef>,
    /// The change in Gerrit, when it was a change's build and Gerrit's URL is known.
    pub gerrit_url: Option<String>,
}

/// Reads build `id`; `None` when the ledger has no such build.
pub fn build(
    ledger: &Ledger,
    id: &BuildId,
    status: &Status,
) -> Result<Option<BuildView>, LedgerError> {
    let snap = ledger.snapshot()?;
    let Some(b) = snap.build(id)? else {
        return Ok(None);
    };
    let mut ledger_commits = Vec::new();
    for (record, file) in [
        ("build-request", "request.yaml"),
        ("build-result", "result.yaml"),
        ("landing", "landing.yaml"),
    ] {
        let path = format!("{}/{file}", b.dir);
        if let Some(c) = snap.commit_of(&path)? {
            ledger_commits.push(LedgerRef {
                record: record.into(),
                path,
                commit: c.to_string(),
            });
        }
    }
    let line = status.builds.iter().find(|l| l.build_id == id.as_str());
    let jobs = match (&b.result, line) {
        (Some(r), _) => r
            .jobs
            .iter()
            .map(|j| JobView {
                name: j.name.clone(),
                status: j.status.as_str().into(),
                duration_ms: Some(j.duration_ms),
                started_at: None,
                log: j.log_digest.as_ref().map(ToString::to_string),
                attempt: line
                    .and_then(|l| l.jobs.iter().find(|x| x.name == j.name))
                    .map_or(1, |x| x.attempt),
                needs: j.needs.clone(),
                image: j.image.clone(),
            })
            .collect(),
        (None, Some(l)) => l
            .jobs
            .iter()
            .map(|j| JobView {
                name: j.name.clone(),
                status: j.state.clone(),
                duration_ms: None,
                started_at: j.started_at.clone(),
                log: None,
                attempt: j.attempt,
                needs: Vec::new(),
                image: None,
            })
            .collect(),
        (None, None) => b
            .request
            .jobs
            .iter()
            .map(|name| JobView {
                name: name.clone(),
                status: "not recorded".into(),
                duration_ms: None,
                started_at: None,
                log: None,
                attempt: 1,
                needs: Vec::new(),
                image: None,
            })
            .collect(),
    };
    let artifacts = snap
        .trace_build(id)?
        .map(|t| t.artifacts)
        .unwrap_or_default();
    let gerrit_url = match (&status.gerrit, b.request.change) {
        (Some(g), Some(c)) => Some(format!(
            "{}/c/{}/+/{}{}",
            g.url.trim_end_matches('/'),
            b.request.project,
            c,
            b.request
                .patchset
                .map(|p| format!("/{p}"))
                .unwrap_or_default()
        )),
        _ => None,
    };
    Ok(Some(BuildView {
        build_id: id.to_string(),
        in_flight: line.is_some(),
        request: b.request,
        result: b.result,
        landing: b.landing,
        jobs,
        artifacts,
        ledger_commits,
        gerrit_url,
    }))
}

/// A record a commit added, changed or removed.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedRecord {
    /// `A`, `M` or `D`.
    pub change: String,
    /// Its path.
    pub path: String,
    /// Its content (at most [`SHOWN_BYTES`]), unless removed.
    pub content: Option<String>,
    /// Whether the content was cut.
    pub truncated: bool,
}

/// Bytes of a record shown on a commit's page.
pub const SHOWN_BYTES: usize = 64 * 1024;

/// Records shown on a commit's page (a key rotation or an index rebuild may touch many).
pub const SHOWN_RECORDS: usize = 200;

/// The signature of a ledger commit, as this server judged it.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureView {
    /// Whether the commit carries a signature at all.
    pub present: bool,
    /// The signer's fingerprint, when the signature verified against a trusted key.
    pub signer: Option<String>,
    /// Whether the signer may sign ledger commits (the `ledger` role) at the config commit.
    pub allowed: bool,
    /// The signer's roles at that config commit.
    pub roles: Vec<String>,
    /// The config commit whose `keys/` judged it.
    pub keys_of: Option<String>,
    /// The verdict, in words.
    pub verdict: String,
}

/// `/ledger/<commit>`.
#[derive(Debug, Clone, Serialize)]
pub struct CommitView {
    /// The commit.
    pub commit: String,
    /// Committer time.
    pub time: String,
    /// The summary line.
    pub summary: String,
    /// The trailers.
    pub trailers: Vec<(String, String)>,
    /// Its parents.
    pub parents: Vec<String>,
    /// Whether it is on the ledger's history (an ancestor of its tip).
    pub on_history: bool,
    /// What it changed.
    pub records: Vec<ChangedRecord>,
    /// Records not shown (past [`SHOWN_RECORDS`]).
    pub more_records: usize,
    /// The signature.
    pub signature: SignatureView,
    /// How to check it yourself.
    pub verify_command: String,
}

/// Judges a commit's signature against the keys trusted at the config commit it names (its
/// `Config-Commit:` trailer, else the config in use). When in doubt: not allowed.
fn judge(
    payload: &[u8],
    signature: Option<&[u8]>,
    named_config: Option<&str>,
    keys: Option<&(String, History)>,
) -> SignatureView {
    let mut v = SignatureView {
        present: signature.is_some(),
        signer: None,
        allowed: false,
        roles: Vec::new(),
        keys_of: None,
        verdict: String::new(),
    };
    let Some(sig) = signature else {
        v.verdict = "not signed: not allowed".into();
        return v;
    };
    let Some((in_use, history)) = keys else {
        v.verdict = "no trusted keys are known to this server yet: not allowed".into();
        return v;
    };
    let config = named_config.unwrap_or(in_use);
    v.keys_of = Some(config.to_owned());
    let Some(authority) = history(config) else {
        v.verdict = format!(
            "config commit {config} is not on the config branch or is invalid: its keys are not \
             trusted, not allowed"
        );
        return v;
    };
    match authority.keyring().verify(payload, sig) {
        Err(e) => v.verdict = format!("{e}: not allowed"),
        Ok(signer) => {
            v.roles = authority
                .roles(&signer)
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect();
            v.allowed = authority.allows(&signer, KeyRole::Ledger);
            v.verdict = if v.allowed {
                format!(
                    "good signature by {signer}, allowed to sign ledger commits by the keys of \
                     config commit {config}"
                )
            } else {
                format!("good signature by {signer}, which may not sign ledger commits")
            };
            v.signer = Some(signer);
        }
    }
    v
}

/// Reads ledger commit `commit`; `None` when the ledger holds no such commit.
pub fn commit(
    ledger: &Ledger,
    ledger_dir: &Path,
    commit: gix::ObjectId,
    keys: Option<&(String, History)>,
) -> Result<Option<CommitView>, LedgerError> {
    let Ok(c) = ledger.raw_commit(commit) else {
        return Ok(None);
    };
    let at = ledger.snapshot_at(commit)?;
    let message_lines: Vec<&str> = c.message.lines().collect();
    let summary = message_lines
        .first()
        .copied()
        .unwrap_or_default()
        .to_owned();
    let trailers: Vec<(String, String)> = c
        .message
        .trim_end()
        .rsplit("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let named_config = trailers
        .iter()
        .find(|(k, _)| k == "Config-Commit")
        .map(|(_, v)| v.as_str());
    let mut signature = judge(&c.payload, c.signature.as_deref(), named_config, keys);
    let on_history = match ledger.tip()? {
        Some(tip) if tip == commit => true,
        Some(tip) => crate::git::mirror::run_git(
            ledger_dir,
            &[
                "merge-base",
                "--is-ancestor",
                &commit.to_string(),
                &tip.to_string(),
            ],
            None,
        )
        .is_ok(),
        None => false,
    };
    // As `ledger verify` does: the signer must also be one the ledger allowed before this
    // commit (its parent's LEDGER; the first commit's own), and the commit on its history.
    let signers = match c.parents.first() {
        Some(p) => ledger.snapshot_at(*p)?.meta()?.signers,
        None => at.meta()?.signers,
    };
    if let Some(signer) = &signature.signer
        && signature.allowed
    {
        if !signers.contains(signer) {
            signature.allowed = false;
            signature.verdict = format!(
                "good signature by {signer}, which the ledger did not allow before this commit \
                 (its LEDGER names {}): not allowed",
                signers.join(", ")
            );
        } else if !on_history {
            signature.allowed = false;
            signature.verdict = format!(
                "good signature by {signer}, but the commit is not on the ledger's history: \
                 not allowed"
            );
        }
    }
    let changed = at.changed_paths()?;
    let more_records = changed.len().saturating_sub(SHOWN_RECORDS);
    let mut records = Vec::new();
    for (change, path) in changed.into_iter().take(SHOWN_RECORDS) {
        let content = if change == "D" { None } else { at.read(&path)? };
        let truncated = content.as_ref().is_some_and(|b| b.len() > SHOWN_BYTES);
        records.push(ChangedRecord {
            change: change.into(),
            content: content
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(SHOWN_BYTES)]).into_owned()),
            truncated,
            path,
        });
    }
    Ok(Some(CommitView {
        commit: commit.to_string(),
        time: crate::model::Timestamp::from_second(c.time)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        summary,
        trailers,
        parents: c.parents.iter().map(ToString::to_string).collect(),
        on_history,
        records,
        more_records,
        signature,
        verify_command: format!("git -C {} verify-commit {commit}", ledger_dir.display()),
    }))
}

/// A build of a change, for `/changes/<number>`.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeBuild {
    /// The build.
    pub build_id: String,
    /// Its pipeline.
    pub pipeline: String,
    /// Its outcome, once recorded.
    pub status: Option<String>,
    /// When it was requested.
    pub requested_at: String,
    /// The commit it tested.
    pub source_commit: String,
}

/// The builds of one patchset.
#[derive(Debug, Clone, Serialize)]
pub struct PatchsetBuilds {
    /// The patchset.
    pub patchset: u32,
    /// Its builds, newest first.
    pub builds: Vec<ChangeBuild>,
}

/// `/changes/<number>`.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeView {
    /// The change.
    pub change: u32,
    /// Its project.
    pub project: String,
    /// Its builds by patchset, newest patchset first.
    pub patchsets: Vec<PatchsetBuilds>,
}

/// How deep project names nest under `changes/` (a project `a/b/c` is three levels).
const PROJECT_DEPTH: usize = 8;

/// Finds the project directory under `changes/` holding change `n` (`<project>/<NN>/<n>`).
fn change_dirs(
    snap: &crate::ledger::Snapshot<'_>,
    n: ChangeNumber,
) -> Result<Vec<String>, LedgerError> {
    let shard = format!("{:02}", n.get() % 100);
    let mut found = Vec::new();
    let mut frontier = vec![("changes".to_owned(), 0usize)];
    while let Some((dir, depth)) = frontier.pop() {
        if depth > 0 && snap.lookup(&format!("{dir}/{shard}/{n}"))?.is_some() {
            found.push(dir.clone());
        }
        if depth >= PROJECT_DEPTH {
            continue;
        }
        for e in snap.list(&dir)? {
            let name = String::from_utf8_lossy(&e.name).into_owned();
            // Shard directories are two digits; projects never are only that (see the
            // layout), so a two-digit name is not descended into.
            let is_shard = name.len() == 2 && name.bytes().all(|b| b.is_ascii_digit());
            if e.is_tree() && !is_shard {
                frontier.push((format!("{dir}/{name}"), depth + 1));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reads every build of change `n`, by project (a number is unique within one Gerrit).
pub fn change(ledger: &Ledger, n: ChangeNumber) -> Result<Vec<ChangeView>, LedgerError> {
    let snap = ledger.snapshot()?;
    let mut out = Vec::new();
    for dir in change_dirs(&snap, n)? {
        let project = dir.trim_start_matches("changes/").to_owned();
        let Ok(p) = project.parse() else {
            continue;
        };
        let mut by_patchset: std::collections::BTreeMap<u32, Vec<ChangeBuild>> =
            std::collections::BTreeMap::new();
        for id in snap.change_builds(&p, n)? {
            let Some(b) = snap.build(&id)? else {
                continue;
            };
            let ps = b.request.patchset.map_or(0, |p| p.get());
            by_patchset.entry(ps).or_default().push(ChangeBuild {
                build_id: id.to_string(),
                pipeline: b.request.pipeline.to_string(),
                status: b.result.as_ref().map(|r| r.status.as_str().to_owned()),
                requested_at: b.request.requested_at.to_string(),
                source_commit: b.request.source_commit.to_string(),
            });
        }
        let patchsets = by_patchset
            .into_iter()
            .rev()
            .map(|(patchset, mut builds)| {
                builds.sort_by(|a, b| b.requested_at.cmp(&a.requested_at));
                PatchsetBuilds { patchset, builds }
            })
            .collect();
        out.push(ChangeView {
            change: n.get(),
            project,
            patchsets,
        });
    }
    Ok(out)
}

/// A trace by digest or build id; `None` when the ledger knows neither.
pub fn trace(ledger: &Ledger, what: &str) -> Result<Option<Trace>, LedgerError> {
    let snap = ledger.snapshot()?;
    if let Ok(d) = what.parse::<crate::model::Digest>() {
        return snap.trace_digest(&d);
    }
    match what.parse::<BuildId>() {
        Ok(id) => snap.trace_build(&id),
        Err(_) => Ok(None),
    }
}
