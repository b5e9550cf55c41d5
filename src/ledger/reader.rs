//! Reading the ledger: lookups by path, build id and digest that read only the few trees on
//! the path, never history; the commit that added a record (by bisection over `index/chain`); and the
//! trace of an artifact from its build to every promotion.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Serialize;

use crate::git::ObjectId;
use crate::git::tree::TreeEntry;
use crate::model::{
    Artifact, Attestation, BuildId, BuildRequest, BuildResult, Digest, Promotion, Record,
};

use super::commit::read_commit;
use super::overlay::{read_blob, read_tree};
use super::{Ledger, LedgerError, LedgerMeta, layout};

/// A read-only view of the ledger at one commit.
pub struct Snapshot<'l> {
    ledger: &'l Ledger,
    commit: ObjectId,
    tree: ObjectId,
    sequence: Option<u64>,
    /// Root trees of commits by sequence number, as bisection visits them.
    trees_by_sequence: RefCell<HashMap<u64, ObjectId>>,
    /// Sequence numbers that added records found so far: records of one build or one trace
    /// usually come from the same commit, so these are tried before bisecting.
    hints: RefCell<Vec<u64>>,
}

/// A build's records.
#[derive(Debug, Clone)]
pub struct BuildRecords {
    /// Its directory in the ledger.
    pub dir: String,
    /// The request.
    pub request: BuildRequest,
    /// The result, once recorded.
    pub result: Option<BuildResult>,
    /// For a gate build: its landing, once recorded.
    pub landing: Option<crate::model::record::Landing>,
}

/// One ledger commit, for `ledger log`.
#[derive(Debug, Clone, Serialize)]
pub struct CommitSummary {
    /// The commit id.
    pub commit: String,
    /// Committer time, RFC 3339.
    pub time: String,
    /// The summary line.
    pub summary: String,
    /// The trailers (key, value).
    pub trailers: Vec<(String, String)>,
}

/// A record in a trace, with the ledger commit that added it.
#[derive(Debug, Clone, Serialize)]
pub struct TraceRecord {
    /// Record kind.
    pub record: &'static str,
    /// Its path in the ledger.
    pub path: String,
    /// The commit that added it.
    pub ledger_commit: String,
}

/// An attestation in a trace.
#[derive(Debug, Clone, Serialize)]
pub struct TraceAttestation {
    /// The predicate type.
    pub predicate_type: String,
    /// Its path.
    pub path: String,
    /// The key ids its envelope names.
    pub keyids: Vec<String>,
    /// The commit that added it.
    pub ledger_commit: String,
}

/// How a build's source commit landed (the gate's landing record).
#[derive(Debug, Clone, Serialize)]
pub struct TraceLanding {
    /// The change.
    pub change: u32,
    /// Its patchset.
    pub patchset: u32,
    /// The branch.
    pub branch: String,
    /// The tip before.
    pub old_tip: String,
    /// The landed commit (the one the gate build tested).
    pub commit: String,
    /// The gate build that tested it.
    pub gate_build: String,
    /// The votes that admitted the change.
    pub votes: Vec<String>,
    /// `push` or `submit`.
    pub method: String,
}

/// A promotion in a trace.
#[derive(Debug, Clone, Serialize)]
pub struct TracePromotion {
    /// The environment.
    pub environment: String,
    /// The image.
    pub image: String,
    /// The digest promoted.
    pub digest: String,
    /// What it replaced.
    pub previous_digest: Option<String>,
    /// Source registry.
    pub from_registry: String,
    /// Target registry.
    pub to_registry: String,
    /// The config commit that asked for it.
    pub config_commit: String,
    /// When.
    pub promoted_at: String,
    /// Whether the environment still runs this digest.
    pub current: bool,
    /// The commit that recorded it.
    pub ledger_commit: String,
}

/// The chain of an artifact (or of a build): who built it from what, what vouches for it, and
/// where it went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trace {
    /// The artifact digest (absent when tracing a build that produced nothing).
    pub digest: Option<String>,
    /// The artifact's name and kind, when an artifact record exists.
    pub name: Option<String>,
    /// `image`, `file` or `log`.
    pub kind: Option<String>,
    /// The build that produced it.
    pub build_id: Option<String>,
    /// Its pipeline.
    pub pipeline: Option<crate::model::PipelineKind>,
    /// Its trust level.
    pub trust: Option<crate::model::Trust>,
    /// Its outcome, once finished.
    pub status: Option<String>,
    /// Gerrit project.
    pub project: Option<String>,
    /// Gerrit change.
    pub change: Option<u32>,
    /// Patchset.
    pub patchset: Option<u32>,
    /// The ref that was built.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Exact source commit.
    pub source_commit: Option<String>,
    /// Config commit that planned the build.
    pub config_commit: Option<String>,
    /// What caused the build: the upstream build it followed, or its schedule tick.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<crate::model::record::BuildCause>,
    /// Other builds that produced the same digest.
    pub rebuilt_by: Vec<String>,
    /// Attestations about the digest.
    pub attestations: Vec<TraceAttestation>,
    /// Every promotion of the digest, oldest first.
    pub promotions: Vec<TracePromotion>,
    /// For a build trace: the traces of the artifacts the build produced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Trace>,
    /// Every record of the chain with the commit that added it.
    pub ledger_commits: Vec<TraceRecord>,
    /// How its source commit landed on its branch, when the gate landed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landed: Option<TraceLanding>,
}

impl<'l> Snapshot<'l> {
    pub(crate) fn at(ledger: &'l Ledger, commit: ObjectId) -> Result<Snapshot<'l>, LedgerError> {
        let c = read_commit(ledger.repo(), commit)?;
        Ok(Snapshot {
            ledger,
            commit,
            tree: c.tree,
            sequence: super::message_sequence(&c.message),
            trees_by_sequence: RefCell::default(),
            hints: RefCell::default(),
        })
    }

    /// The commit this view is at.
    pub fn commit(&self) -> ObjectId {
        self.commit
    }

    /// Its root tree.
    pub fn tree(&self) -> ObjectId {
        self.tree
    }

    /// What this commit changed relative to its first parent: (`A`, `M` or `D`, path).
    pub fn changed_paths(&self) -> Result<Vec<(&'static str, String)>, LedgerError> {
        let c = read_commit(self.ledger.repo(), self.commit)?;
        let parent_tree = match c.parents.first() {
            Some(p) => Some(read_commit(self.ledger.repo(), *p)?.tree),
            None => None,
        };
        Ok(
            super::diff::diff_trees(self.ledger.repo(), parent_tree, self.tree)?
                .into_iter()
                .map(|ch| match ch {
                    super::diff::Change::Added { path, .. } => ("A", path),
                    super::diff::Change::Modified { path, .. } => ("M", path),
                    super::diff::Change::Deleted { path } => ("D", path),
                })
                .collect(),
        )
    }

    /// The LEDGER file.
    pub fn meta(&self) -> Result<LedgerMeta, LedgerError> {
        let bytes = self
            .read("LEDGER")?
            .ok_or_else(|| LedgerError::Corrupt("the tree has no LEDGER file".into()))?;
        LedgerMeta::parse(&bytes).map_err(LedgerError::Corrupt)
    }

    /// The entry at `path`, reading one tree per path segment.
    pub fn lookup(&self, path: &str) -> Result<Option<TreeEntry>, LedgerError> {
        self.lookup_in(self.tree, path)
    }

    fn lookup_in(&self, root: ObjectId, path: &str) -> Result<Option<TreeEntry>, LedgerError> {
        let repo = self.ledger.repo();
        let mut tree = root;
        let mut parts = path.split('/').filter(|p| !p.is_empty()).peekable();
        while let Some(part) = parts.next() {
            let raw = match crate::git::read_object(repo, &tree) {
                Ok(Some((gix::object::Kind::Tree, data))) => data,
                Ok(_) => return Err(LedgerError::Corrupt(format!("tree {tree} is missing"))),
                Err(message) => {
                    return Err(LedgerError::Read {
                        id: tree.to_string(),
                        message,
                    });
                }
            };
            let found = crate::git::tree::find(&raw, part.as_bytes())
                .map_err(|e| LedgerError::Corrupt(format!("tree {tree}: {e}")))?;
            let Some((mode, oid)) = found else {
                return Ok(None);
            };
            let entry = TreeEntry {
                mode,
                name: part.as_bytes().to_vec(),
                oid,
            };
            if parts.peek().is_none() {
                return Ok(Some(entry));
            }
            if !entry.is_tree() {
                return Ok(None);
            }
            tree = entry.oid;
        }
        Ok(Some(TreeEntry {
            mode: crate::git::tree::MODE_TREE,
            name: Vec::new(),
            oid: root,
        }))
    }

    /// The bytes of the file at `path`.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        match self.lookup(path)? {
            Some(e) if !e.is_tree() => read_blob(self.ledger.repo(), &e.oid).map(Some),
            _ => Ok(None),
        }
    }

    /// The entries of the directory at `path` (empty if there is none).
    pub fn list(&self, path: &str) -> Result<Vec<TreeEntry>, LedgerError> {
        match self.lookup(path)? {
            Some(e) if e.is_tree() => read_tree(self.ledger.repo(), &e.oid),
            _ => Ok(Vec::new()),
        }
    }

    /// The record stored at `path`.
    pub fn record(&self, path: &str) -> Result<Option<Record>, LedgerError> {
        match self.read(path)? {
            None => Ok(None),
            Some(bytes) => parse_record(path, &bytes).map(Some),
        }
    }

    /// This commit's sequence number (the root commit is 0).
    pub fn sequence(&self) -> Result<u64, LedgerError> {
        self.sequence.ok_or_else(|| {
            LedgerError::Corrupt(format!(
                "commit {} has no {} trailer",
                self.commit,
                super::SEQUENCE_TRAILER
            ))
        })
    }

    /// The commit with sequence number `n` (at most this snapshot's), from `index/chain`.
    pub fn commit_at_sequence(&self, n: u64) -> Result<Option<ObjectId>, LedgerError> {
        if n == self.sequence()? {
            return Ok(Some(self.commit));
        }
        Ok(self.chain_entry(n)?.map(|(commit, _)| commit))
    }

    /// The (commit, root tree) of sequence number `n`, from `index/chain`.
    fn chain_entry(&self, n: u64) -> Result<Option<(ObjectId, ObjectId)>, LedgerError> {
        let Some(bytes) = self.read(&layout::chain_path(n))? else {
            return Ok(None);
        };
        layout::parse_chain_entry(&bytes).map(Some).ok_or_else(|| {
            LedgerError::Corrupt(format!("{} is not a chain entry", layout::chain_path(n)))
        })
    }

    /// The commit that added the record at `path`. Records are never removed, so whether a
    /// path exists is monotonic along the history: a binary search over the sequence numbers
    /// (through `index/chain`) finds the first commit that has it in a logarithmic number of
    /// path lookups, without walking history.
    pub fn commit_of(&self, path: &str) -> Result<Option<ObjectId>, LedgerError> {
        if self.lookup(path)?.is_none() {
            return Ok(None);
        }
        let hints = self.hints.borrow().clone();
        for s in hints {
            if self.exists_at(s, path)? && (s == 0 || !self.exists_at(s - 1, path)?) {
                return self.commit_at_sequence(s);
            }
        }
        let (mut lo, mut hi) = (0, self.sequence()?);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.exists_at(mid, path)? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.hints.borrow_mut().insert(0, lo);
        self.commit_at_sequence(lo)
    }

    fn exists_at(&self, sequence: u64, path: &str) -> Result<bool, LedgerError> {
        let cached = self.trees_by_sequence.borrow().get(&sequence).copied();
        let tree = match cached {
            Some(t) => t,
            None => {
                let t = if sequence == self.sequence()? {
                    self.tree
                } else {
                    self.chain_entry(sequence)?
                        .ok_or_else(|| {
                            LedgerError::Corrupt(format!(
                                "{} is missing",
                                layout::chain_path(sequence)
                            ))
                        })?
                        .1
                };
                self.trees_by_sequence.borrow_mut().insert(sequence, t);
                t
            }
        };
        Ok(self.lookup_in(tree, path)?.is_some())
    }

    /// A build's request and result, found through `index/builds`.
    pub fn build(&self, id: &BuildId) -> Result<Option<BuildRecords>, LedgerError> {
        let Some(dir) = self.read(&layout::build_index_path(id))? else {
            return Ok(None);
        };
        let dir = String::from_utf8_lossy(&dir).trim_end().to_owned();
        let request = match self.record(&format!("{dir}/request.yaml"))? {
            Some(Record::BuildRequest(r)) => r,
            _ => {
                return Err(LedgerError::Corrupt(format!(
                    "{dir}: index names a build without a request"
                )));
            }
        };
        let result = match self.record(&format!("{dir}/result.yaml"))? {
            Some(Record::BuildResult(r)) => Some(r),
            Some(_) => {
                return Err(LedgerError::Corrupt(format!(
                    "{dir}/result.yaml is not a build-result"
                )));
            }
            None => None,
        };
        let landing = match self.record(&format!("{dir}/landing.yaml"))? {
            Some(Record::Landing(l)) => Some(l),
            Some(_) => {
                return Err(LedgerError::Corrupt(format!(
                    "{dir}/landing.yaml is not a landing"
                )));
            }
            None => None,
        };
        Ok(Some(BuildRecords {
            dir,
            request,
            result,
            landing,
        }))
    }

    /// The directory of the gate build whose tested commit landed as `commit`, if one did.
    pub fn landed_as(
        &self,
        commit: &crate::model::CommitId,
    ) -> Result<Option<String>, LedgerError> {
        Ok(self
            .read(&layout::landing_index_path(commit))?
            .map(|d| String::from_utf8_lossy(&d).trim_end().to_owned()))
    }

    /// The artifact record of a digest (the first build that produced it).
    pub fn artifact(&self, digest: &Digest) -> Result<Option<Artifact>, LedgerError> {
        match self.record(&layout::artifact_path(digest))? {
            Some(Record::Artifact(a)) => Ok(Some(a)),
            Some(_) => Err(LedgerError::Corrupt(format!(
                "{} is not an artifact",
                layout::artifact_path(digest)
            ))),
            None => Ok(None),
        }
    }

    /// Adds the record at `path` to the trace's `ledger_commits`; returns the commit that
    /// added it.
    fn note(&self, t: &mut Trace, record: &'static str, path: &str) -> Result<String, LedgerError> {
        let ledger_commit = self
            .commit_of(path)?
            .map(|c| c.to_string())
            .unwrap_or_default();
        t.ledger_commits.push(TraceRecord {
            record,
            path: path.to_owned(),
            ledger_commit: ledger_commit.clone(),
        });
        Ok(ledger_commit)
    }

    fn fill_build(&self, t: &mut Trace, id: &BuildId) -> Result<(), LedgerError> {
        t.build_id = Some(id.to_string());
        let Some(b) = self.build(id)? else {
            return Ok(());
        };
        let r = &b.request;
        t.pipeline = Some(r.pipeline);
        t.trust = Some(r.trust);
        t.project = Some(r.project.to_string());
        t.change = r.change.map(|c| c.get());
        t.patchset = r.patchset.map(|p| p.get());
        t.git_ref = Some(r.git_ref.to_string());
        t.source_commit = Some(r.source_commit.to_string());
        t.config_commit = Some(r.config_commit.to_string());
        t.cause = r.cause.clone();
        let path = format!("{}/request.yaml", b.dir);
        self.note(t, "build-request", &path)?;
        if let Some(res) = &b.result {
            t.status = Some(res.status.as_str().to_owned());
            let path = format!("{}/result.yaml", b.dir);
            self.note(t, "build-result", &path)?;
        }
        // The gate build that tested this commit and landed it, if one did.
        if let Some(dir) = self.landed_as(&r.source_commit)? {
            let path = format!("{dir}/landing.yaml");
            if let Some(Record::Landing(l)) = self.record(&path)? {
                self.note(t, "landing", &path)?;
                t.landed = Some(TraceLanding {
                    change: l.change.get(),
                    patchset: l.patchset.get(),
                    branch: l.branch.to_string(),
                    old_tip: l.old_tip.to_string(),
                    commit: l.commit.to_string(),
                    gate_build: l.build_id.to_string(),
                    votes: l.votes.clone(),
                    method: serde_plain(&l.method),
                });
            }
        }
        Ok(())
    }

    /// The builds of a change, newest patchset first (from the `changes/` index).
    pub fn change_builds(
        &self,
        project: &crate::model::ProjectName,
        change: crate::model::ChangeNumber,
    ) -> Result<Vec<BuildId>, LedgerError> {
        let dir = format!("changes/{project}/{:02}/{change}", change.get() % 100);
        let mut out = Vec::new();
        let mut patchsets: Vec<(u64, String)> = self
            .list(&dir)?
            .into_iter()
            .filter_map(|e| {
                let name = String::from_utf8_lossy(&e.name).into_owned();
                Some((name.parse().ok()?, name))
            })
            .collect();
        patchsets.sort();
        for (_, ps) in patchsets.into_iter().rev() {
            for e in self.list(&format!("{dir}/{ps}"))? {
                if let Ok(id) = String::from_utf8_lossy(&e.name).parse() {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// The chain of an artifact digest; `None` if the ledger knows nothing of it.
    pub fn trace_digest(&self, digest: &Digest) -> Result<Option<Trace>, LedgerError> {
        let mut t = Trace {
            digest: Some(digest.to_string()),
            ..Trace::default()
        };
        let mut known = false;
        if let Some(a) = self.artifact(digest)? {
            known = true;
            t.name = Some(a.name.clone());
            t.kind = Some(serde_plain(&a.kind));
            let path = layout::artifact_path(digest);
            self.note(&mut t, "artifact", &path)?;
            self.fill_build(&mut t, &a.build_id)?;
        }
        let dir = layout::artifact_dir(digest);
        for e in self.list(&format!("{dir}/rebuilt"))? {
            let name = String::from_utf8_lossy(&e.name).into_owned();
            if let Some(id) = name.strip_suffix(".yaml") {
                known = true;
                t.rebuilt_by.push(id.to_owned());
                let path = format!("{dir}/rebuilt/{name}");
                self.note(&mut t, "artifact", &path)?;
            }
        }
        let att_dir = layout::attestation_dir(digest);
        for e in self.list(&att_dir)? {
            let path = format!("{att_dir}/{}", String::from_utf8_lossy(&e.name));
            if let Some(Record::Attestation(a)) = self.record(&path)? {
                known = true;
                let ledger_commit = self.note(&mut t, "attestation", &path)?;
                t.attestations
                    .push(attestation_summary(&a, path, ledger_commit));
            }
        }
        for e in self.list(&format!("{dir}/expiries"))? {
            let path = format!("{dir}/expiries/{}", String::from_utf8_lossy(&e.name));
            if let Some(Record::Expiry(_)) = self.record(&path)? {
                known = true;
                self.note(&mut t, "expiry", &path)?;
            }
        }
        let promo_dir = format!("{dir}/promotions");
        for env in self.list(&promo_dir)? {
            let env_name = String::from_utf8_lossy(&env.name).into_owned();
            for e in self.list(&format!("{promo_dir}/{env_name}"))? {
                let path = format!(
                    "{promo_dir}/{env_name}/{}",
                    String::from_utf8_lossy(&e.name)
                );
                if let Some(Record::Promotion(p)) = self.record(&path)? {
                    known = true;
                    let ledger_commit = self.note(&mut t, "promotion", &path)?;
                    // Current if the environment's pointer holds this very blob.
                    let pointer = layout::promotion_pointer(&p.environment, &p.image);
                    let current = self.lookup(&pointer)?.is_some_and(|ptr| ptr.oid == e.oid);
                    t.promotions
                        .push(promotion_summary(&p, current, ledger_commit));
                }
            }
        }
        t.promotions
            .sort_by(|a, b| a.promoted_at.cmp(&b.promoted_at));
        Ok(known.then_some(t))
    }

    /// The chain of a build: its request and result, and the trace of each artifact it made.
    pub fn trace_build(&self, id: &BuildId) -> Result<Option<Trace>, LedgerError> {
        let Some(b) = self.build(id)? else {
            return Ok(None);
        };
        let mut t = Trace {
            digest: None,
            ..Trace::default()
        };
        self.fill_build(&mut t, id)?;
        if let Some(result) = &b.result {
            for a in &result.artifacts {
                if let Some(sub) = self.trace_digest(&a.digest)? {
                    t.artifacts.push(sub);
                }
            }
        }
        Ok(Some(t))
    }
}

fn serde_plain<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn attestation_summary(a: &Attestation, path: String, ledger_commit: String) -> TraceAttestation {
    TraceAttestation {
        predicate_type: a.predicate_type.clone(),
        path,
        keyids: a
            .envelope
            .signatures
            .iter()
            .map(|s| s.keyid.clone())
            .collect(),
        ledger_commit,
    }
}

fn promotion_summary(p: &Promotion, current: bool, ledger_commit: String) -> TracePromotion {
    TracePromotion {
        environment: p.environment.to_string(),
        image: p.image.to_string(),
        digest: p.digest.to_string(),
        previous_digest: p.previous_digest.as_ref().map(ToString::to_string),
        from_registry: p.from_registry.clone(),
        to_registry: p.to_registry.clone(),
        config_commit: p.config_commit.to_string(),
        promoted_at: p.promoted_at.to_string(),
        current,
        ledger_commit,
    }
}

/// Parses a record file (JSON for `.json`, YAML otherwise).
pub(crate) fn parse_record(path: &str, bytes: &[u8]) -> Result<Record, LedgerError> {
    let parsed = if path.ends_with(".json") {
        serde_json::from_slice::<Record>(bytes).map_err(|e| e.to_string())
    } else if let Some(parsed) = parse_yaml_by_kind(bytes) {
        parsed
    } else {
        yaml_serde::from_slice::<Record>(bytes).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| LedgerError::Corrupt(format!("{path}: {e}")))
}

/// seakeeper writes the kind first (`record: build-request`); parsing the rest straight into
/// that kind's struct avoids serde's buffering of internally tagged enums, which dominates
/// `verify`. Returns `None` when the file does not start that way (then the general parser
/// decides).
fn parse_yaml_by_kind(bytes: &[u8]) -> Option<Result<Record, String>> {
    use crate::model::{Artifact, Attestation, BuildRequest, BuildResult, Freeze, Promotion};
    let rest = bytes.strip_prefix(b"record: ")?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let (kind, body) = (&rest[..nl], &rest[nl + 1..]);
    fn typed<T: serde::de::DeserializeOwned>(
        body: &[u8],
        wrap: fn(T) -> Record,
    ) -> Result<Record, String> {
        yaml_serde::from_slice::<T>(body)
            .map(wrap)
            .map_err(|e| e.to_string())
    }
    Some(match kind {
        b"build-request" => typed::<BuildRequest>(body, Record::BuildRequest),
        b"build-result" => typed::<BuildResult>(body, Record::BuildResult),
        b"artifact" => typed::<Artifact>(body, Record::Artifact),
        b"attestation" => typed::<Attestation>(body, Record::Attestation),
        b"expiry" => typed::<crate::model::record::Expiry>(body, Record::Expiry),
        b"promotion-refusal" => {
            typed::<crate::model::record::PromotionRefusal>(body, Record::PromotionRefusal)
        }
        b"promotion" => typed::<Promotion>(body, Record::Promotion),
        b"freeze" => typed::<Freeze>(body, Record::Freeze),
        b"landing" => typed::<crate::model::record::Landing>(body, Record::Landing),
        _ => return None,
    })
}

impl Ledger {
    /// The first-parent history from the tip, newest first, at most `limit` commits.
    pub fn log(&self, limit: usize) -> Result<Vec<CommitSummary>, LedgerError> {
        let mut out = Vec::new();
        let mut next = self.tip()?;
        while let Some(id) = next {
            if out.len() >= limit {
                break;
            }
            let c = read_commit(self.repo(), id)?;
            let mut lines = c.message.lines();
            let summary = lines.next().unwrap_or_default().to_owned();
            let trailers = c
                .message
                .rsplit("\n\n")
                .next()
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let time = crate::model::Timestamp::from_second(c.time)
                .map(|t| t.to_string())
                .unwrap_or_default();
            out.push(CommitSummary {
                commit: id.to_string(),
                time,
                summary,
                trailers,
            });
            next = c.parents.first().copied();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_parses_like_the_general_one() {
        for r in crate::ledger::sample::records(0, 30) {
            let bytes = layout::encode_record(&r);
            let path = if matches!(r, Record::Attestation(_)) {
                "x.json"
            } else {
                "x.yaml"
            };
            assert_eq!(parse_record(path, &bytes).unwrap(), r);
            if path == "x.yaml" {
                let general: Record = yaml_serde::from_slice(&bytes).unwrap();
                assert_eq!(general, r);
                let mut extra = bytes.clone();
                extra.extend_from_slice(b"colour: blue\n");
                let err = parse_record(path, &extra).unwrap_err().to_string();
                assert!(err.contains("colour"), "{err}");
            }
        }
        // A file that does not start with its kind still parses (or fails) through serde.
        let reordered = b"build_id: b1\nrecord: build-result\nstatus: success\nstarted_at: 2026-11-22T02:30:00Z\nfinished_at: 2026-11-22T02:31:00Z\njobs: []\n";
        assert!(matches!(
            parse_record("x.yaml", reordered),
            Ok(Record::BuildResult(_))
        ));
        assert!(parse_record("x.yaml", b"record: nonsense\nx: 1\n").is_err());
    }
}
