//! The gate's effects: speculative merges made and published, tested commits landed (pushed by
//! compare-and-swap, or submitted and checked) and recorded, builds no longer wanted retired,
//! and changes told what the gate did with them.

use super::{Applied, Error, Services, crash_point, finish};
use crate::config::Layout;
use crate::config::files::LandMethod;
use crate::gerrit::ReviewInput;
use crate::git::ObjectId;
use crate::git::speculative::{self, MergeError, Step};
use crate::model::record::{BuildCause, LandedBy, Landing};
use crate::model::{BuildId, BuildStatus, ChangeNumber, CommitId, ProjectName, Record, Timestamp};
use crate::reconcile::{Fact, GateEvent, GateNote, MergeOutcome, World, gate};

fn oid(c: &CommitId) -> ObjectId {
    ObjectId::from_hex(c.as_str().as_bytes()).expect("a commit id is 40 hex digits")
}

fn git_error(what: String, transient: bool) -> impl FnOnce(MergeError) -> Error {
    move |e| Error::Git {
        what,
        message: e.to_string(),
        transient,
    }
}

/// Merges a change's commit onto a speculative state, once: the outcome is remembered by the
/// World, the state published under `refs/seakeeper/speculative/` for executors to fetch.
pub(super) fn merge(
    svc: &Services,
    layout: &Layout,
    world: &World,
    project: &ProjectName,
    onto: &CommitId,
    commit: &CommitId,
    label: &str,
) -> Result<Applied, Error> {
    // The change's commit and the state must be in the repository: the change by its
    // patchset ref (fetched from Gerrit when mirrored), the state by its branch or because
    // seakeeper made it here.
    let source = |e: crate::git::mirror::SourceError| Error::Git {
        what: format!("fetching {label} of {project}"),
        message: e.to_string(),
        transient: !e.permanent,
    };
    let patchset_ref = world
        .changes
        .iter()
        .find(|((p, _), ps)| p == project && &ps.commit == commit)
        .map(|(_, ps)| ps.git_ref.to_string());
    let repo = match &patchset_ref {
        Some(r) => svc.sources.ensure(project, r, commit).map_err(source)?,
        None => svc.sources.path(project),
    };
    let branch = world
        .tips
        .iter()
        .find(|((p, _), c)| p == project && *c == onto)
        .map(|((_, b), _)| b.to_string());
    if let Some(b) = &branch {
        svc.sources.ensure(project, b, onto).map_err(source)?;
    }
    let (onto_id, commit_id) = (oid(onto), oid(commit));
    let what = format!("merging {label} onto {onto} in {}", repo.display());
    // Every parent of the change must be in the state already: a change built on another
    // change that is neither landed nor ahead of it would bring that change in untested.
    let mut missing = Vec::new();
    for p in speculative::parents(&repo, &commit_id).map_err(git_error(what.clone(), true))? {
        if !speculative::is_ancestor(&repo, &p, &onto_id).map_err(git_error(what.clone(), true))? {
            missing.push(
                p.to_string()
                    .parse::<CommitId>()
                    .expect("git prints commit ids"),
            );
        }
    }
    let outcome = if !missing.is_empty() {
        MergeOutcome::MissingParents(missing)
    } else {
        let step = Step {
            label: label.to_owned(),
            commit: commit_id,
        };
        // Another thread's fetch into the same repository may be repacking it (git's automatic
        // gc) while the merge reads it: a read that fails is tried again, a few times.
        let mut attempt = 0;
        let merged = loop {
            match speculative::merge_chain(&repo, onto_id, std::slice::from_ref(&step)) {
                Err(MergeError::Git(e)) if attempt < 3 => {
                    attempt += 1;
                    tracing::debug!("{what}: {e}; trying again");
                    std::thread::sleep(std::time::Duration::from_millis(50 * attempt));
                }
                other => break other,
            }
        };
        match merged {
            Ok(merged) => {
                let state = merged
                    .first()
                    .map(speculative::Merged::commit)
                    .unwrap_or(onto_id);
                let name =
                    speculative::publish(&repo, &state).map_err(git_error(what.clone(), true))?;
                // Pods fetch from the server, not from this machine: the state goes there too.
                if layout.settings.executor.kind == crate::config::files::ExecutorKind::Kubernetes
                    && state != commit_id
                {
                    let c: CommitId = state.to_string().parse().expect("git prints commit ids");
                    svc.sources
                        .publish_ref(project, &name, &c)
                        .map_err(source)?;
                }
                MergeOutcome::Merged(state.to_string().parse().expect("git prints commit ids"))
            }
            Err(MergeError::Conflict { paths, .. }) => MergeOutcome::Conflict(paths),
            Err(e) => return Err(git_error(what, true)(e)),
        }
    };
    let said = match &outcome {
        MergeOutcome::Merged(s) if s == onto => format!("already in {onto}"),
        MergeOutcome::Merged(s) => format!("state {s}"),
        MergeOutcome::Conflict(p) => format!("conflicts in {}", p.join(", ")),
        MergeOutcome::MissingParents(p) => format!("{} parents missing", p.len()),
    };
    tracing::info!("[gate] {project}: {label} onto {onto}: {said}");
    Ok(Applied::progress([Fact::Merged {
        project: project.clone(),
        onto: onto.clone(),
        commit: commit.clone(),
        outcome,
    }]))
}

/// What a gate build says of its change's place in the gate.
struct GateOf<'b> {
    queue: &'b str,
    branch: &'b crate::model::RefName,
    base: &'b CommitId,
    /// The states of the items ahead in the build's state: once they landed, one of them is
    /// the tip the build's state descends from.
    states: Vec<&'b CommitId>,
    change_commit: &'b CommitId,
    votes: &'b [String],
    change: ChangeNumber,
    entry: crate::reconcile::GateEntry,
}

fn gate_of(r: &crate::model::record::BuildRequest) -> Option<GateOf<'_>> {
    let Some(BuildCause::Gate {
        queue,
        branch,
        base,
        change_commit,
        votes,
        eligible_since,
        rechecks,
        ahead,
        ..
    }) = &r.cause
    else {
        return None;
    };
    Some(GateOf {
        queue,
        branch,
        base,
        states: ahead.iter().map(|a| &a.state).collect(),
        change_commit,
        votes,
        change: r.change?,
        entry: crate::reconcile::GateEntry {
            patchset: r.patchset?,
            since: *eligible_since,
            rechecks: *rechecks,
        },
    })
}

/// Lands a gate build's tested commit, bit for bit, then records the landing. Nothing is
/// pushed that this build did not test: the build succeeded on exactly `source_commit`, which
/// descends from the tip it started from, and the tip is moved only if it is still that tip.
/// A commit that is the tip already (landed before a crash took the record) is only recorded.
pub(super) fn land(
    svc: &Services,
    layout: &Layout,
    world: &World,
    id: &BuildId,
) -> Result<Applied, Error> {
    let Some(b) = world.builds.get(id) else {
        return Ok(Applied::nothing());
    };
    let tip = gate_of(&b.request).and_then(|g| {
        world
            .tips
            .get(&(b.request.project.clone(), g.branch.clone()))
    });
    land_at(svc, layout, world, id, tip, None)
}

/// [`land`], with the branch's tip as known (`tip`) and, for a commit that landed before and
/// that the branch moved on from since, the tip now (`moved_on`).
fn land_at(
    svc: &Services,
    layout: &Layout,
    world: &World,
    id: &BuildId,
    tip: Option<&CommitId>,
    moved_on: Option<&CommitId>,
) -> Result<Applied, Error> {
    let Some(b) = world.builds.get(id) else {
        return Ok(Applied::nothing());
    };
    let r = &b.request;
    let Some(g) = gate_of(r) else {
        return Err(Error::Config(format!("{id} is not a gate build")));
    };
    if b.result != Some(BuildStatus::Success) {
        return Err(Error::Config(format!(
            "{id} did not pass: nothing of it lands"
        )));
    }
    let spec = &r.source_commit;
    let method = layout.land_method(&r.project);
    // Landed before a crash took its record: it landed on the state just before it (the last
    // item ahead, all of which landed first), else on the tip it was made on.
    let mut old_tip = (*g.states.last().unwrap_or(&g.base)).clone();
    if tip != Some(spec) {
        // The tip the state was made on, or the state of an item ahead that landed since
        // (the state descends from each): anything else moved underneath.
        let Some(from) = tip.filter(|t| *t == g.base || g.states.contains(t)) else {
            return Err(Error::Git {
                what: format!("landing {id}"),
                message: format!(
                    "{} moved from {} to {}: the queue is tested again on the new tip",
                    g.branch,
                    g.base,
                    tip.map_or("(gone)".to_owned(), ToString::to_string)
                ),
                transient: true,
            });
        };
        old_tip = from.clone();
        let repo = svc.sources.path(&r.project);
        let what = format!("landing {id}");
        if !speculative::is_ancestor(&repo, &oid(from), &oid(spec))
            .map_err(git_error(what.clone(), true))?
        {
            return Err(Error::Git {
                what,
                message: format!("{spec} does not descend from {from}: it is not landed"),
                transient: false,
            });
        }
        // Gerrit is asked once more, just before: the change must still be open, at the
        // patchset that was tested, with the votes that admitted it.
        let details = still_admitted(svc, layout, r, &g)?;
        // Verified at the label's top on the tested patchset, before it lands (after that
        // Gerrit takes no votes), as Wikimedia's gate gives it; Gerrit's submit rules want it.
        if let Some(c) = &details {
            vote_passed(svc, &r.project, g.change, g.change_commit, c, spec)?;
        }
        match method {
            LandMethod::Push => svc
                .sources
                .push_branch(&r.project, g.branch.as_str(), from, spec)
                .map_err(|e| Error::Git {
                    what: format!("pushing {spec} to {} of {}", g.branch, r.project),
                    message: e.to_string(),
                    transient: true,
                })?,
            LandMethod::Submit => {
                submit(svc, &r.project, g.change, g.change_commit, g.branch, spec)?
            }
        }
        crash_point("after-land");
        (svc.reporter)(&format!(
            "[gate] {} change {},{}: landed as {spec} on {} (build {id})",
            r.project, g.change, g.entry.patchset, g.branch
        ));
    }
    // Build once: the images its jobs declared, built from the tested commit, are attested
    // and enter the first environment now that the commit landed (post-merge does not build
    // them again). Before the landing record: a crash in between publishes them on restart.
    let mut facts = Vec::new();
    // Recorded before a crash: recorded once.
    if recorded_landing(svc, id)?.is_none() {
        facts.extend(publish_images(svc, layout, world, b)?);
        let landing = Landing {
            build_id: id.clone(),
            project: r.project.clone(),
            change: g.change,
            patchset: g.entry.patchset,
            change_commit: g.change_commit.clone(),
            branch: g.branch.clone(),
            old_tip: old_tip.clone(),
            commit: spec.clone(),
            votes: g.votes.to_vec(),
            config_commit: r.config_commit.clone(),
            method: match method {
                LandMethod::Push => LandedBy::Push,
                LandMethod::Submit => LandedBy::Submit,
            },
            landed_at: Timestamp::now(),
        };
        let landed_at = landing.landed_at;
        svc.writer
            .append(Record::Landing(landing))
            .map_err(|source| Error::Record {
                what: format!("recording the landing of {id}"),
                source,
            })?;
        (svc.on_write)();
        crate::metrics::get().landed(g.entry.since, landed_at);
    }
    let settings = &layout.settings.gate;
    let window = gate::next_window(
        gate::window_of(&world.windows, g.queue, settings),
        true,
        settings,
    );
    facts.extend([
        Fact::Landed {
            build: id.clone(),
            project: r.project.clone(),
            branch: g.branch.clone(),
            commit: spec.clone(),
            tip: moved_on.unwrap_or(spec).clone(),
        },
        Fact::GateNoted {
            project: r.project.clone(),
            change: g.change,
            note: GateNote {
                event: GateEvent::Landed,
                entry: g.entry,
            },
        },
        Fact::GateWindow {
            queue: g.queue.to_owned(),
            window,
        },
    ]);
    Ok(Applied::progress(facts))
}

/// The images a landed gate build's jobs declare: assembled from their outputs, pushed,
/// attested and entered into the first environment, recorded once (an image this build has
/// recorded already, before a crash, is not recorded again).
fn publish_images(
    svc: &Services,
    layout: &Layout,
    world: &World,
    b: &crate::reconcile::BuildState,
) -> Result<Vec<Fact>, Error> {
    let r = &b.request;
    let Some(jobs) = crate::reconcile::jobs_of(world, r) else {
        // Its pipeline file is not read yet (just after a restart): nothing is recorded
        // before its images are.
        return Err(Error::Git {
            what: format!("publishing the images of {}", r.build_id),
            message: "its pipeline file is not read yet".into(),
            transient: true,
        });
    };
    let started = b
        .recorded
        .as_ref()
        .map_or(r.requested_at, |(res, _)| res.started_at);
    let recorded = |digest: &crate::model::Digest| -> Result<bool, Error> {
        let _packs = crate::ledger::read_guard();
        let ledger = svc.read_ledger()?;
        let snapshot = ledger
            .snapshot()
            .map_err(Error::ledger("reading the ledger"))?;
        Ok(snapshot
            .artifact(digest)
            .map_err(Error::ledger(format!("reading artifact {digest}")))?
            .is_some_and(|a| a.build_id == r.build_id))
    };
    let mut published = super::publish::Published::default();
    for job in jobs.iter().filter(|j| !j.image_outputs.is_empty()) {
        let attempt = b.jobs.get(&job.name).map_or(1, |run| run.attempt);
        let key = super::job_key(&r.build_id, &job.name, attempt);
        let mut p = super::publish::images(svc, layout, world, r, job, &key, started)?;
        let mut seen = Vec::new();
        for rec in &p.records {
            if let Record::Artifact(a) = rec
                && recorded(&a.digest)?
            {
                seen.push(a.digest.clone());
            }
        }
        p.records.retain(|rec| match rec {
            Record::Artifact(a) => !seen.contains(&a.digest),
            Record::Attestation(a) => !seen.contains(&a.subject_digest),
            Record::Promotion(pr) => !seen.contains(&pr.digest),
            _ => true,
        });
        published.append(&mut p);
    }
    for rec in std::mem::take(&mut published.records) {
        svc.writer.append(rec).map_err(|source| Error::Record {
            what: format!("recording the images of {}", r.build_id),
            source,
        })?;
    }
    (svc.on_write)();
    Ok(vec![published.fact()])
}

/// Whether the change a gate build tested is still what Gerrit would have the gate land: open,
/// at the tested patchset, with the votes the config asks for (read again just before landing;
/// without Gerrit's REST API, the World's last reading stands).
fn still_admitted(
    svc: &Services,
    layout: &Layout,
    r: &crate::model::record::BuildRequest,
    g: &GateOf<'_>,
) -> Result<Option<crate::gerrit::Change>, Error> {
    let Some(gerrit) = &svc.gerrit else {
        return Ok(None);
    };
    let c = gerrit
        .rest
        .get_change(&r.project, g.change)
        .map_err(|source| Error::Gerrit {
            what: format!("reading change {} before landing it", g.change),
            source,
        })?;
    let refuse = |why: String| Error::Git {
        what: format!("landing change {} of {}", g.change, r.project),
        message: format!("{why}: it is not landed (the queue catches up on the next pass)"),
        transient: true,
    };
    if c.status != crate::gerrit::ChangeStatus::New {
        return Err(refuse(format!("the change is {:?} now", c.status)));
    }
    if c.current_revision.as_ref() != Some(g.change_commit) {
        return Err(refuse(format!(
            "its current patchset is {} now, not the tested {}",
            c.current_revision
                .as_ref()
                .map_or("(none)".to_owned(), ToString::to_string),
            g.change_commit
        )));
    }
    for req in layout.gate_requirements(&r.project) {
        let votes = c.labels.get(&req.label).map(Vec::as_slice).unwrap_or(&[]);
        if votes.iter().any(|v| v.value <= -req.value)
            || !votes.iter().any(|v| v.value >= req.value)
        {
            return Err(refuse(format!(
                "it no longer has {}+{}",
                req.label, req.value
            )));
        }
    }
    Ok(Some(c))
}

/// The gate's Verified vote at the label's top on the tested patchset, once (a vote already at
/// the top is not given again). With reports off, none; a Gerrit that refuses it (no such
/// label) is noted and the landing goes on.
fn vote_passed(
    svc: &Services,
    project: &ProjectName,
    change: ChangeNumber,
    change_commit: &CommitId,
    details: &crate::gerrit::Change,
    spec: &CommitId,
) -> Result<(), Error> {
    let Some(g) = svc.gerrit.as_ref().filter(|g| g.report) else {
        return Ok(());
    };
    let top = details
        .label_values
        .get("Verified")
        .map_or(1, |(_, max)| *max);
    if details.label_range("Verified").0 >= top {
        return Ok(());
    }
    let review = ReviewInput::for_pipeline(
        "gate",
        &format!("seakeeper gate: passed as {spec}; landing it."),
        Some(top),
    );
    match g
        .post
        .post_review(project, change, change_commit.as_str(), &review)
    {
        Ok(_) => Ok(()),
        Err(e) if super::final_refusal(&e) => {
            tracing::warn!("change {change} of {project}: Gerrit refused the gate's vote: {e}");
            Ok(())
        }
        Err(source) => Err(Error::Gerrit {
            what: format!("voting on change {change} of {project} before landing it"),
            source,
        }),
    }
}

/// The landing the ledger holds for a gate build, if any.
fn recorded_landing(svc: &Services, id: &BuildId) -> Result<Option<Landing>, Error> {
    let _packs = crate::ledger::read_guard();
    let ledger = svc.read_ledger()?;
    let snapshot = ledger
        .snapshot()
        .map_err(Error::ledger(format!("reading build {id}")))?;
    Ok(snapshot
        .build(id)
        .map_err(Error::ledger(format!("reading build {id}")))?
        .and_then(|b| b.landing))
}

/// Submits a change through Gerrit's REST API and checks that the branch's tip is then the
/// tested commit: Gerrit's submit must not make a commit of its own (the project must be
/// fast-forward only, and the change on top of the tip).
fn submit(
    svc: &Services,
    project: &ProjectName,
    change: ChangeNumber,
    change_commit: &CommitId,
    branch: &crate::model::RefName,
    spec: &CommitId,
) -> Result<(), Error> {
    let Some(g) = &svc.gerrit else {
        return Err(Error::Config(format!(
            "{project} lands by `submit`, but no Gerrit REST API is configured"
        )));
    };
    // Gerrit's submit can only make the tested commit when the change is that commit (on top
    // of the tip): a state seakeeper merged is landed by push, never by submit.
    if spec != change_commit {
        return Err(Error::Git {
            what: format!("submitting change {change} of {project}"),
            message: format!(
                "the tested commit {spec} is a merge seakeeper made, which Gerrit's submit \
                 cannot make: rebase the change on {branch}, or land this project by push"
            ),
            transient: false,
        });
    }
    let gerrit = |what: String| move |source| Error::Gerrit { what, source };
    g.post
        .submit_revision(project, change, change_commit)
        .map_err(gerrit(format!("submitting change {change} of {project}")))?;
    let tip = g
        .rest
        .list_branches(project)
        .map_err(gerrit(format!(
            "reading the branches of {project} after submitting"
        )))?
        .into_iter()
        .find(|b| b.git_ref == branch.as_str())
        .map(|b| b.revision);
    if tip.as_deref() != Some(spec.as_str()) {
        return Err(Error::Git {
            what: format!("submitting change {change} of {project}"),
            message: format!(
                "Gerrit's submit left {branch} at {}, not at the tested commit {spec}: the \
                 change merged as a commit nobody tested, and seakeeper records no landing \
                 (set the project to fast-forward only, or land by push)",
                tip.as_deref().unwrap_or("(no such branch)")
            ),
            transient: false,
        });
    }
    Ok(())
}

/// A gate build no queue wants any more that has its result: done with, silently. One that
/// passed and whose commit is on its branch after all (landed before a crash, and the branch
/// moved on since) is recorded as landed first.
pub(super) fn retire(
    svc: &Services,
    layout: &Layout,
    world: &World,
    id: &BuildId,
) -> Result<Applied, Error> {
    let Some(b) = world.builds.get(id) else {
        return Ok(Applied::nothing());
    };
    let r = &b.request;
    if b.result == Some(BuildStatus::Success)
        && let Some(g) = gate_of(r)
        && let Some(tip) = world.tips.get(&(r.project.clone(), g.branch.clone()))
    {
        let repo = svc.sources.path(&r.project);
        let landed = svc
            .sources
            .ensure(&r.project, g.branch.as_str(), tip)
            .is_ok()
            && speculative::is_ancestor(&repo, &oid(&r.source_commit), &oid(tip)).unwrap_or(false)
            && speculative::is_ancestor(&repo, &oid(g.base), &oid(&r.source_commit))
                .unwrap_or(false)
            && *g.base != r.source_commit;
        if landed {
            return land_at(svc, layout, world, id, Some(&r.source_commit), Some(tip));
        }
    }
    (svc.reporter)(&format!(
        "[gate] {id}: retired (its state is no longer wanted)"
    ));
    Ok(Applied::progress([finish(svc, id)]))
}

/// Tells a change what the gate did with it, once per entry and event (a comment already
/// carrying the `Gate:` line is not posted again). With reports off, it is printed.
pub(super) fn tell(
    svc: &Services,
    project: &ProjectName,
    change: ChangeNumber,
    commit: &CommitId,
    note: &GateNote,
    text: &str,
) -> Result<Applied, Error> {
    let told = Fact::GateNoted {
        project: project.clone(),
        change,
        note: *note,
    };
    let message = format!("{text}\n\n{}\n", note.line());
    let Some(g) = svc.gerrit.as_ref().filter(|g| g.report) else {
        (svc.reporter)(&format!("[gate] {project} change {change}: {text}"));
        return Ok(Applied::progress([told]));
    };
    let line = note.line();
    let posted = g
        .rest
        .get_change(project, change)
        .map_err(|source| Error::Gerrit {
            what: format!("reading change {change} before telling it"),
            source,
        })?
        .messages
        .iter()
        .any(|m| m.message.lines().any(|l| l.trim() == line));
    if !posted {
        let mut review = ReviewInput::for_pipeline(
            "gate",
            &message,
            (note.event == GateEvent::Refused).then_some(-1),
        );
        if note.event == GateEvent::Entered {
            review.notify = Some(crate::gerrit::Notify::None);
        }
        match g
            .post
            .post_review(project, change, commit.as_str(), &review)
        {
            Ok(_) => {}
            Err(e) if super::final_refusal(&e) => {
                (svc.reporter)(&format!(
                    "[gate] {project} change {change}: Gerrit refused the comment ({e}): {text}"
                ));
            }
            Err(source) => {
                return Err(Error::Gerrit {
                    what: format!("telling change {change} of {project}"),
                    source,
                });
            }
        }
    }
    (svc.reporter)(&format!("[gate] {project} change {change}: {text}"));
    Ok(Applied::progress([told]))
}

/// The facts of reporting a gate build's end: its note (landed or failed), and for a failure
/// the queue's window halved (never below the floor).
pub(super) fn reported(
    layout: &Layout,
    world: &World,
    r: &crate::model::record::BuildRequest,
    status: Option<BuildStatus>,
    landed: bool,
) -> Vec<Fact> {
    let Some(g) = gate_of(r) else {
        return Vec::new();
    };
    let event = match status {
        _ if landed => GateEvent::Landed,
        Some(BuildStatus::Failure | BuildStatus::Error | BuildStatus::TimedOut) => {
            GateEvent::Failed
        }
        _ => return Vec::new(),
    };
    let mut facts = vec![Fact::GateNoted {
        project: r.project.clone(),
        change: g.change,
        note: GateNote {
            event,
            entry: g.entry,
        },
    }];
    if event == GateEvent::Failed {
        let settings = &layout.settings.gate;
        let now = gate::window_of(&world.windows, g.queue, settings);
        facts.push(Fact::GateWindow {
            queue: g.queue.to_owned(),
            window: gate::next_window(now, false, settings),
        });
    }
    facts
}

/// The `Gate:` line and the words a gate build's report ends with.
pub(super) fn report_lines(
    r: &crate::model::record::BuildRequest,
    b: &crate::reconcile::BuildState,
) -> String {
    let Some(g) = gate_of(r) else {
        return String::new();
    };
    match (&b.landed, b.result) {
        (Some(commit), _) => format!(
            "\nLanded as {commit} on {}: the commit this build tested, bit for bit.\n{}\n",
            g.branch,
            GateNote {
                event: GateEvent::Landed,
                entry: g.entry
            }
            .line()
        ),
        (None, Some(BuildStatus::Failure | BuildStatus::Error | BuildStatus::TimedOut)) => {
            format!(
                "\nThe change left the gate queue {}; nothing of it was merged. Fix it and \
                 upload a new patchset, or comment \"recheck\" to enter again.\n{}\n",
                g.queue,
                GateNote {
                    event: GateEvent::Failed,
                    entry: g.entry
                }
                .line()
            )
        }
        _ => String::new(),
    }
}
