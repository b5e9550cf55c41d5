//! The ref watcher: refs are truth. Each project's refs are listed (all of `refs/heads/`,
//! `refs/tags/` and `refs/changes/`, or just the prefix an event hinted at), compared with what
//! was seen before, and the differences become [`RefEvent`]s.
//!
//! What was seen survives restarts without a database: one file per project in the state
//! directory (`<project, percent-encoded>.refs`, sorted `<oid> <ref>` lines) plus an
//! append-only journal (`.log`) of later changes, fsynced, folded into the snapshot when it
//! grows. Observing never writes: the caller acts on an [`Observation`] and then
//! [`RefWatcher::acknowledge`]s it, so a crash in between reports the same events again
//! (at least once; everything above is idempotent) and never loses one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gix::ObjectId;
use serde::Serialize;

use super::events::DomainEvent;
use super::http::encode_component;
use super::refs::{Ref, RefSource, RefsError};
use crate::model::{ChangeNumber, CommitId, PatchsetNumber, ProjectName, RefName};

/// The prefixes of a full pass.
pub const WATCHED_PREFIXES: [&str; 3] = ["refs/heads/", "refs/tags/", "refs/changes/"];

/// What part of a project to look at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every watched ref.
    All,
    /// One change's refs (`refs/changes/XX/N/`).
    Change(ChangeNumber),
    /// One ref (a branch or tag).
    Ref(RefName),
}

impl Scope {
    fn prefixes(&self) -> Vec<String> {
        match self {
            Scope::All => WATCHED_PREFIXES.iter().map(|p| p.to_string()).collect(),
            Scope::Change(n) => vec![change_prefix(*n)],
            Scope::Ref(r) => vec![r.to_string()],
        }
    }
}

/// `refs/changes/XX/N/`, where XX is N's last two digits, zero-padded.
pub fn change_prefix(n: ChangeNumber) -> String {
    format!("refs/changes/{:02}/{}/", n.get() % 100, n)
}

/// A difference between what a project's refs were and what they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RefEvent {
    /// `refs/changes/XX/N/P` appeared: a new change or a new patchset.
    PatchsetCreated {
        /// The project.
        project: ProjectName,
        /// The change.
        change: ChangeNumber,
        /// The patchset.
        patchset: PatchsetNumber,
        /// Its ref.
        #[serde(rename = "ref")]
        git_ref: RefName,
        /// Its commit.
        commit: CommitId,
    },
    /// `refs/changes/XX/N/meta` moved: votes, messages or status changed (read the change).
    ChangeMetaUpdated {
        /// The project.
        project: ProjectName,
        /// The change.
        change: ChangeNumber,
        /// The meta commit before, if it existed.
        old: Option<CommitId>,
        /// The meta commit now.
        commit: CommitId,
    },
    /// A branch was created.
    BranchCreated {
        /// The project.
        project: ProjectName,
        /// `refs/heads/...`.
        #[serde(rename = "ref")]
        git_ref: RefName,
        /// Its commit.
        commit: CommitId,
    },
    /// A branch moved.
    BranchMoved {
        /// The project.
        project: ProjectName,
        /// `refs/heads/...`.
        #[serde(rename = "ref")]
        git_ref: RefName,
        /// Where it was.
        old: CommitId,
        /// Where it is.
        commit: CommitId,
    },
    /// A branch was deleted.
    BranchDeleted {
        /// The project.
        project: ProjectName,
        /// `refs/heads/...`.
        #[serde(rename = "ref")]
        git_ref: RefName,
        /// Where it was.
        old: CommitId,
    },
    /// Any other watched ref changed (tags; a change's refs deleted).
    RefUpdated {
        /// The project.
        project: ProjectName,
        /// The ref.
        #[serde(rename = "ref")]
        git_ref: RefName,
        /// Before (none: created).
        old: Option<CommitId>,
        /// After (none: deleted).
        commit: Option<CommitId>,
    },
}

/// The ref watcher could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Listing failed.
    #[error(transparent)]
    Refs(#[from] RefsError),
    /// The state directory could not be read or written.
    #[error("{path}: {message}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong (with the line, for a damaged file).
        message: String,
    },
}

/// What one look at a project found. Hand it back with [`RefWatcher::acknowledge`] once the
/// events are taken care of.
#[derive(Debug)]
pub struct Observation {
    /// The project.
    pub project: ProjectName,
    /// What was looked at.
    pub scope: Scope,
    /// The differences, in ref-name order.
    pub events: Vec<RefEvent>,
    /// True when nothing was known about the project before: the refs become the baseline and
    /// no events are reported for them.
    pub first_sight: bool,
    /// How many refs were listed.
    pub listed: usize,
    prefixes: Vec<String>,
    refs: Vec<Ref>,
}

impl Observation {
    /// The refs listed (under the scope's prefixes), sorted by name.
    pub fn refs(&self) -> &[Ref] {
        &self.refs
    }
}

#[derive(Debug, Default, Clone)]
struct ProjectState {
    refs: BTreeMap<String, ObjectId>,
    journal_lines: usize,
    /// Bumped at every compaction; a journal of another generation is stale (left by a crash
    /// between writing the new snapshot and removing the old journal) and is ignored.
    generation: u64,
}

/// Watches projects' refs.
pub struct RefWatcher {
    source: RefSource,
    dir: PathBuf,
    state: Mutex<HashMap<ProjectName, Arc<ProjectState>>>,
}

const SNAPSHOT_HEADER: &str = "# seakeeper gerrit ref state v1\n";
const GENERATION: &str = "# generation ";

impl RefWatcher {
    /// A watcher reading refs from `source` and keeping what it saw in `state_dir` (created if
    /// missing).
    pub fn open(source: RefSource, state_dir: &Path) -> Result<RefWatcher, WatchError> {
        std::fs::create_dir_all(state_dir).map_err(|e| WatchError::State {
            path: state_dir.to_owned(),
            message: e.to_string(),
        })?;
        Ok(RefWatcher {
            source,
            dir: state_dir.to_owned(),
            state: Mutex::new(HashMap::new()),
        })
    }

    /// The ref source.
    pub fn source(&self) -> &RefSource {
        &self.source
    }

    fn paths(&self, project: &ProjectName) -> (PathBuf, PathBuf) {
        let base = encode_component(project.as_str());
        (
            self.dir.join(format!("{base}.refs")),
            self.dir.join(format!("{base}.log")),
        )
    }

    fn known(&self, project: &ProjectName) -> Result<Option<Arc<ProjectState>>, WatchError> {
        if let Some(s) = self.lock().get(project) {
            return Ok(Some(s.clone()));
        }
        let Some(state) = self.load(project)? else {
            return Ok(None);
        };
        let state = Arc::new(state);
        self.lock().insert(project.clone(), state.clone());
        Ok(Some(state))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProjectName, Arc<ProjectState>>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks at `scope` of `project` and reports what changed. Writes nothing.
    pub fn observe(&self, project: &ProjectName, scope: Scope) -> Result<Observation, WatchError> {
        let known = self.known(project)?;
        // Without a baseline, a partial look would make the rest of the project look new later.
        let scope = if known.is_none() { Scope::All } else { scope };
        let prefixes = scope.prefixes();
        let prefix_refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
        let refs = self.source.list(project, &prefix_refs)?;
        let listed = refs.len();
        if let (Scope::All, Some(state), true) = (&scope, &known, refs.is_empty())
            && !state.refs.is_empty()
        {
            return Err(WatchError::State {
                path: self.paths(project).0,
                message: format!(
                    "the server listed no refs for {project}, which had {}: refusing to report \
                     them all deleted (was access to it removed?)",
                    state.refs.len()
                ),
            });
        }
        let events = match &known {
            None => Vec::new(),
            Some(state) => diff(project, &state.refs, &prefixes, &refs),
        };
        Ok(Observation {
            project: project.clone(),
            scope,
            events,
            first_sight: known.is_none(),
            listed,
            prefixes,
            refs,
        })
    }

    /// Observes every project (each with [`Scope::All`]) on `threads` threads.
    pub fn observe_all(
        &self,
        projects: &[(ProjectName, Scope)],
        threads: usize,
    ) -> Vec<Result<Observation, WatchError>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Observation, WatchError>>>> =
            Mutex::new((0..projects.len()).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, projects.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((project, scope)) = projects.get(i) else {
                            break;
                        };
                        let r = self.observe(project, scope.clone());
                        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|r| r.expect("every index is observed once"))
            .collect()
    }

    /// Records `obs` as seen, durably: its events will not be reported again.
    pub fn acknowledge(&self, obs: Observation) -> Result<(), WatchError> {
        let known = self.known(&obs.project)?.is_some();
        // Take the state out of the map so it can be changed in place, not copied.
        let taken = self.lock().remove(&obs.project);
        let mut next = taken
            .map(|a| Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone()))
            .unwrap_or_default();
        // The changes, as absolute values (replaying them twice is harmless).
        let mut changes: Vec<(String, Option<ObjectId>)> = Vec::new();
        for prefix in &obs.prefixes {
            let gone: Vec<String> = next
                .refs
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                .filter(|(k, _)| obs.refs.binary_search_by(|(n, _)| n.cmp(k)).is_err())
                .map(|(k, _)| k.clone())
                .collect();
            for k in gone {
                next.refs.remove(&k);
                changes.push((k, None));
            }
        }
        for (name, oid) in &obs.refs {
            if next.refs.get(name) != Some(oid) {
                next.refs.insert(name.clone(), *oid);
                changes.push((name.clone(), Some(*oid)));
            }
        }
        let (snapshot, journal) = self.paths(&obs.project);
        if !known || next.journal_lines + changes.len() > 1024 + next.refs.len() / 4 {
            next.generation += 1;
            write_snapshot(&snapshot, &next.refs, next.generation)?;
            remove_durably(&journal)?;
            next.journal_lines = 0;
        } else if !changes.is_empty() {
            append_journal(&journal, &changes, next.generation)?;
            next.journal_lines += changes.len();
        }
        self.lock().insert(obs.project, Arc::new(next));
        Ok(())
    }

    fn load(&self, project: &ProjectName) -> Result<Option<ProjectState>, WatchError> {
        let (snapshot, journal) = self.paths(project);
        let text = match std::fs::read(&snapshot) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(WatchError::State {
                    path: snapshot,
                    message: e.to_string(),
                });
            }
        };
        let bad = |path: &Path, line: usize, message: &str| WatchError::State {
            path: path.to_owned(),
            message: format!("line {line}: {message}"),
        };
        let body = text
            .strip_prefix(SNAPSHOT_HEADER.as_bytes())
            .ok_or_else(|| bad(&snapshot, 1, "not a seakeeper ref state file (v1)"))?;
        let mut state = ProjectState::default();
        for (i, line) in body.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            if let Some(g) = line.strip_prefix(GENERATION.as_bytes()) {
                state.generation = std::str::from_utf8(g)
                    .ok()
                    .and_then(|g| g.parse().ok())
                    .ok_or_else(|| bad(&snapshot, i + 2, "bad generation"))?;
                continue;
            }
            let (name, oid) = parse_state_line(line).map_err(|m| bad(&snapshot, i + 2, &m))?;
            let oid = oid.ok_or_else(|| bad(&snapshot, i + 2, "deletion in a snapshot"))?;
            state.refs.insert(name, oid);
        }
        match std::fs::read(&journal) {
            Ok(log) => {
                // A torn last line (no newline) was never acknowledged: cut it off, so the next
                // append starts on a line of its own.
                let complete = match log.iter().rposition(|b| *b == b'\n') {
                    Some(i) => &log[..=i],
                    None => &[][..],
                };
                if complete.len() != log.len() {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&journal)
                        .map_err(|e| state_err(&journal, e))?;
                    f.set_len(complete.len() as u64)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| state_err(&journal, e))?;
                }
                // A journal of another generation predates the snapshot: drop it.
                let generation = complete
                    .strip_prefix(GENERATION.as_bytes())
                    .and_then(|rest| rest.split(|b| *b == b'\n').next())
                    .and_then(|g| std::str::from_utf8(g).ok()?.parse::<u64>().ok());
                if generation != Some(state.generation) {
                    remove_durably(&journal)?;
                    return Ok(Some(state));
                }
                for (i, line) in complete.split(|b| *b == b'\n').enumerate() {
                    if line.is_empty() || line.starts_with(GENERATION.as_bytes()) {
                        continue;
                    }
                    let (name, oid) =
                        parse_state_line(line).map_err(|m| bad(&journal, i + 1, &m))?;
                    match oid {
                        Some(oid) => state.refs.insert(name, oid),
                        None => state.refs.remove(&name),
                    };
                    state.journal_lines += 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(WatchError::State {
                    path: journal,
                    message: e.to_string(),
                });
            }
        }
        Ok(Some(state))
    }
}

/// `<40 hex> <ref>`; all zeros means deleted.
fn parse_state_line(line: &[u8]) -> Result<(String, Option<ObjectId>), String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let (hex, name) = text
        .split_once(' ')
        .ok_or_else(|| format!("expected `<object id> <ref>`, found {text:?}"))?;
    let oid = ObjectId::from_hex(hex.as_bytes()).map_err(|_| format!("bad object id {hex:?}"))?;
    if !name.starts_with("refs/") {
        return Err(format!("bad ref name {name:?}"));
    }
    Ok((name.to_owned(), (!oid.is_null()).then_some(oid)))
}

fn state_err(path: &Path, e: std::io::Error) -> WatchError {
    WatchError::State {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn sync_dir(path: &Path) -> Result<(), WatchError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| state_err(dir, e))
}

fn write_snapshot(
    path: &Path,
    refs: &BTreeMap<String, ObjectId>,
    generation: u64,
) -> Result<(), WatchError> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER.len() + refs.len() * 80);
    out.extend_from_slice(SNAPSHOT_HEADER.as_bytes());
    out.extend_from_slice(format!("{GENERATION}{generation}\n").as_bytes());
    for (name, oid) in refs {
        out.extend_from_slice(oid.to_hex().to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    crate::store::write_durably(path, &out).map_err(|e| state_err(path, e))
}

fn remove_durably(path: &Path) -> Result<(), WatchError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(state_err(path, e)),
    }
}

fn append_journal(
    path: &Path,
    changes: &[(String, Option<ObjectId>)],
    generation: u64,
) -> Result<(), WatchError> {
    let existed = path.exists();
    let mut out = Vec::with_capacity(changes.len() * 80 + 32);
    if !existed {
        out.extend_from_slice(format!("{GENERATION}{generation}\n").as_bytes());
    }
    for (name, oid) in changes {
        let oid = oid.unwrap_or_else(|| ObjectId::null(gix::hash::Kind::Sha1));
        out.extend_from_slice(oid.to_hex().to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| state_err(path, e))?;
    f.write_all(&out)
        .and_then(|()| f.sync_data())
        .map_err(|e| state_err(path, e))?;
    if !existed {
        sync_dir(path)?;
    }
    Ok(())
}

/// Compares the old refs under `prefixes` with the new listing (both sorted by name).
fn diff(
    project: &ProjectName,
    old: &BTreeMap<String, ObjectId>,
    prefixes: &[String],
    new: &[Ref],
) -> Vec<RefEvent> {
    let mut events = Vec::new();
    let mut before: Vec<(&String, &ObjectId)> = Vec::new();
    for prefix in prefixes {
        before.extend(
            old.range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(prefix.as_str())),
        );
    }
    before.sort_unstable_by(|a, b| a.0.cmp(b.0));
    before.dedup_by(|a, b| a.0 == b.0);
    let (mut i, mut j) = (0, 0);
    while i < before.len() || j < new.len() {
        let order = match (before.get(i), new.get(j)) {
            (Some(a), Some(b)) => a.0.as_str().cmp(b.0.as_str()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (name, was, now) = match order {
            std::cmp::Ordering::Less => {
                i += 1;
                (before[i - 1].0.as_str(), Some(*before[i - 1].1), None)
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (new[j - 1].0.as_str(), None, Some(new[j - 1].1))
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                if before[i - 1].1 == &new[j - 1].1 {
                    continue;
                }
                (
                    new[j - 1].0.as_str(),
                    Some(*before[i - 1].1),
                    Some(new[j - 1].1),
                )
            }
        };
        if let Some(e) = classify(project, name, was, now) {
            events.push(e);
        }
    }
    events
}

fn commit(oid: ObjectId) -> CommitId {
    oid.to_hex()
        .to_string()
        .parse()
        .expect("a SHA-1 object id is a commit id")
}

/// What a change of `name` from `was` to `now` means.
fn classify(
    project: &ProjectName,
    name: &str,
    was: Option<ObjectId>,
    now: Option<ObjectId>,
) -> Option<RefEvent> {
    let git_ref: RefName = name.parse().ok()?;
    let project = project.clone();
    if let Some(rest) = name.strip_prefix("refs/changes/") {
        let mut parts = rest.split('/');
        let (Some(shard), Some(number), Some(leaf), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let change: ChangeNumber = number.parse().ok()?;
        if shard != format!("{:02}", change.get() % 100) {
            return None;
        }
        if leaf == "meta" {
            return Some(match now {
                Some(now) => RefEvent::ChangeMetaUpdated {
                    project,
                    change,
                    old: was.map(commit),
                    commit: commit(now),
                },
                None => RefEvent::RefUpdated {
                    project,
                    git_ref,
                    old: was.map(commit),
                    commit: None,
                },
            });
        }
        let patchset: PatchsetNumber = leaf.parse().ok()?;
        return Some(match (was, now) {
            (None, Some(now)) => RefEvent::PatchsetCreated {
                project,
                change,
                patchset,
                git_ref,
                commit: commit(now),
            },
            (was, now) => RefEvent::RefUpdated {
                project,
                git_ref,
                old: was.map(commit),
                commit: now.map(commit),
            },
        });
    }
    if name.starts_with("refs/heads/") {
        return Some(match (was, now) {
            (None, Some(now)) => RefEvent::BranchCreated {
                project,
                git_ref,
                commit: commit(now),
            },
            (Some(was), Some(now)) => RefEvent::BranchMoved {
                project,
                git_ref,
                old: commit(was),
                commit: commit(now),
            },
            (Some(was), None) => RefEvent::BranchDeleted {
                project,
                git_ref,
                old: commit(was),
            },
            (None, None) => return None,
        });
    }
    Some(RefEvent::RefUpdated {
        project,
        git_ref,
        old: was.map(commit),
        commit: now.map(commit),
    })
}

/// What the next pass should look at, gathered from event hints.
#[derive(Debug, Default)]
pub struct Hints {
    everything: bool,
    scopes: BTreeMap<ProjectName, BTreeSet<Scope>>,
}

impl Hints {
    /// Look at every project in full (a reconnected or overflowing stream, a timer).
    pub fn resync_all(&mut self) {
        self.everything = true;
    }

    /// Look at `scope` of `project`.
    pub fn add(&mut self, project: ProjectName, scope: Scope) {
        self.scopes.entry(project).or_default().insert(scope);
    }

    /// Turns a stream event into a hint: events are hints, refs are truth.
    pub fn add_event(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::PatchsetCreated {
                project, change, ..
            }
            | DomainEvent::CommentAdded {
                project, change, ..
            }
            | DomainEvent::ChangeAbandoned {
                project, change, ..
            }
            | DomainEvent::ChangeRestored {
                project, change, ..
            } => self.add(project.clone(), Scope::Change(*change)),
            DomainEvent::ChangeMerged {
                project,
                change,
                branch,
                ..
            } => {
                self.add(project.clone(), Scope::Change(*change));
                // The branch moved too; its ref-updated may come later or never.
                let branch = format!("refs/heads/{}", branch.trim_start_matches("refs/heads/"));
                match branch.parse() {
                    Ok(r) => self.add(project.clone(), Scope::Ref(r)),
                    Err(_) => self.add(project.clone(), Scope::All),
                }
            }
            DomainEvent::RefUpdated {
                project, git_ref, ..
            } => {
                let name = git_ref.as_str();
                let scope = name
                    .strip_prefix("refs/changes/")
                    .and_then(|r| r.split('/').nth(1))
                    .and_then(|n| n.parse().ok())
                    .map(Scope::Change)
                    .unwrap_or_else(|| Scope::Ref(git_ref.clone()));
                self.add(project.clone(), scope);
            }
            DomainEvent::BatchRefUpdated { updates } => {
                for u in updates {
                    self.add_event(&DomainEvent::RefUpdated {
                        project: u.project.clone(),
                        git_ref: u.git_ref.clone(),
                        old_commit: u.old_commit.clone(),
                        commit: u.commit.clone(),
                    });
                }
            }
            DomainEvent::ChangeUpdated {
                project, change, ..
            } => self.add(project.clone(), Scope::Change(*change)),
            DomainEvent::ProjectCreated { project, .. } => self.add(project.clone(), Scope::All),
            DomainEvent::DroppedOutput => self.resync_all(),
            DomainEvent::Ignored { .. } => {}
        }
    }

    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        !self.everything && self.scopes.is_empty()
    }

    /// Takes the work for the watched projects `all`: `(project, scope)` pairs, every project
    /// in full when a resync was asked for; a project asked for in full is not also asked for in
    /// part. Hints about other projects, or about refs outside the watched prefixes, are dropped.
    pub fn take(&mut self, all: &[ProjectName]) -> Vec<(ProjectName, Scope)> {
        let everything = std::mem::take(&mut self.everything);
        let scopes = std::mem::take(&mut self.scopes);
        if everything {
            return all.iter().map(|p| (p.clone(), Scope::All)).collect();
        }
        let watched: std::collections::HashSet<&ProjectName> = all.iter().collect();
        let mut out = Vec::new();
        for (project, mut set) in scopes {
            if !watched.contains(&project) {
                continue;
            }
            set.retain(|s| match s {
                Scope::Ref(r) => WATCHED_PREFIXES.iter().any(|p| r.as_str().starts_with(p)),
                _ => true,
            });
            if set.contains(&Scope::All) {
                out.push((project, Scope::All));
            } else {
                out.extend(set.into_iter().map(|s| (project.clone(), s)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    #[test]
    fn differences_become_events() {
        let p: ProjectName = "acme/widgets".parse().unwrap();
        let old = BTreeMap::from([
            ("refs/changes/11/4711/1".to_owned(), oid(1)),
            ("refs/changes/11/4711/meta".to_owned(), oid(2)),
            ("refs/heads/main".to_owned(), oid(3)),
            ("refs/heads/old".to_owned(), oid(4)),
        ]);
        let new = vec![
            ("refs/changes/11/4711/1".to_owned(), oid(1)),
            ("refs/changes/11/4711/2".to_owned(), oid(5)),
            ("refs/changes/11/4711/meta".to_owned(), oid(6)),
            ("refs/heads/main".to_owned(), oid(7)),
            ("refs/heads/new".to_owned(), oid(8)),
            ("refs/tags/v1".to_owned(), oid(9)),
        ];
        let prefixes: Vec<String> = WATCHED_PREFIXES.iter().map(|s| s.to_string()).collect();
        let kinds: Vec<String> = diff(&p, &old, &prefixes, &new)
            .iter()
            .map(|e| {
                serde_json::to_value(e).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "patchset-created",
                "change-meta-updated",
                "branch-moved",
                "branch-created",
                "branch-deleted",
                "ref-updated"
            ]
        );
        // A scoped look only compares refs under its prefix.
        let scoped = diff(
            &p,
            &old,
            &[change_prefix(ChangeNumber::try_from(4711u64).unwrap())],
            &new[..3],
        );
        assert_eq!(scoped.len(), 2);
    }

    #[test]
    fn hints_keep_to_watched_projects_and_prefixes() {
        let watched: ProjectName = "acme/widgets".parse().unwrap();
        let mut h = Hints::default();
        let merged = crate::gerrit::parse_line(r#"{"submitter":{"name":"B"},"newRev":"5f0e1d2c3b4a59687766554433221100ffeeddcc","patchSet":{"number":2,"revision":"a7c4e1f09b2d3c5e8f6a0b1c2d3e4f5a6b7c8d9e","ref":"refs/changes/11/4711/2"},"change":{"project":"acme/widgets","branch":"main","number":4711},"project":"acme/widgets","refName":"refs/heads/main","type":"change-merged","eventCreatedOn":1}"#).unwrap();
        h.add_event(&merged);
        h.add("All-Users".parse().unwrap(), Scope::All);
        h.add(
            watched.clone(),
            Scope::Ref("refs/meta/config".parse().unwrap()),
        );
        let work = h.take(std::slice::from_ref(&watched));
        assert_eq!(
            work,
            vec![
                (
                    watched.clone(),
                    Scope::Change(ChangeNumber::try_from(4711u64).unwrap())
                ),
                (watched, Scope::Ref("refs/heads/main".parse().unwrap())),
            ]
        );
        assert!(h.is_empty());
    }

    #[test]
    fn odd_change_refs_are_not_patchsets() {
        let p: ProjectName = "a".parse().unwrap();
        assert!(classify(&p, "refs/changes/12/4711/1", None, Some(oid(1))).is_none());
        assert!(
            classify(
                &p,
                "refs/changes/11/4711/robot-comments",
                None,
                Some(oid(1))
            )
            .is_none()
        );
        assert_eq!(
            change_prefix(ChangeNumber::try_from(5u64).unwrap()),
            "refs/changes/05/5/"
        );
    }
}
