//! The gate's actions from its queues (see [`super::gate`]): merges to make, builds to
//! request, landings, holds, resets, retirements and what to tell each change.

use std::collections::{BTreeMap, BTreeSet};

use super::gate::{Item, ItemState, SPECULATIVE_REFS, Tested, failed, notes, queues};
use super::world::{GateEvent, GateNote, World};
use super::{Action, job_names, known};
use crate::config::Layout;
use crate::config::files::PipelineKind;
use crate::model::record::{BuildCause, BuildRequest};
use crate::model::{BuildId, BuildStatus, Held};

/// The gate's actions; returns the gate builds the queues want, each with its place in its
/// queue (jobs start head first; the others are reset).
// An arm's inner `if` must not become its guard: a build that fails it would fall through to
// the arms below (a landed, reported build would be landed again).
#[allow(clippy::collapsible_match)]
pub(super) fn plan_gate(
    world: &World,
    layout: &Layout,
    actions: &mut Vec<Action>,
    tells: &mut Vec<Action>,
) -> BTreeMap<BuildId, usize> {
    let mut wanted = BTreeMap::new();
    let mut merges = BTreeSet::new();
    for q in queues(world, layout) {
        let active = q
            .items
            .iter()
            .filter(|i| !matches!(i.state, ItemState::Refused(_) | ItemState::Contained))
            .count();
        let mut position = 0;
        for it in &q.items {
            let noted = |event: GateEvent| {
                world
                    .changes
                    .get(&(it.project.clone(), it.change))
                    .is_some_and(|p| {
                        p.review.as_ref().is_some_and(|r| {
                            notes(world, r, &it.project, it.change)
                                .any(|n| n.event == event && n.entry == it.entry)
                        })
                    })
            };
            let tell = |event: GateEvent, text: String| Action::TellGate {
                project: it.project.clone(),
                change: it.change,
                commit: it.commit.clone(),
                note: GateNote {
                    event,
                    entry: it.entry,
                },
                text,
            };
            if let ItemState::Refused(why) = &it.state {
                actions.push(tell(
                    GateEvent::Refused,
                    format!(
                        "seakeeper gate: change {},{} cannot be tested: {why}. It left the gate \
                         queue; nothing of it was merged.",
                        it.change, it.patchset
                    ),
                ));
                continue;
            }
            // Already on its branch (landed; Gerrit closes it): it holds nobody up.
            if it.state == ItemState::Contained {
                continue;
            }
            position += 1;
            // Told once its first build is under way (or it waits for room): the comment is
            // posted after the jobs start, not on their way.
            let under_way = match &it.state {
                ItemState::Testing(t) => known(world, &t.build),
                ItemState::Merging { .. } | ItemState::Blocked(_) => false,
                _ => true,
            };
            if !noted(GateEvent::Entered) && under_way {
                tells.push(tell(
                    GateEvent::Entered,
                    format!(
                        "seakeeper gate: change {},{} entered the gate queue {} at position \
                         {position} of {active} (window {}), admitted by {}.",
                        it.change,
                        it.patchset,
                        q.name,
                        q.window,
                        it.votes.join(", ")
                    ),
                ));
            }
            match &it.state {
                ItemState::Merging { onto } => {
                    if merges.insert((it.project.clone(), onto.clone(), it.commit.clone())) {
                        actions.push(Action::Merge {
                            project: it.project.clone(),
                            onto: onto.clone(),
                            commit: it.commit.clone(),
                            label: format!("change {},{}", it.change, it.patchset),
                        });
                    }
                }
                ItemState::Testing(t) => {
                    wanted.insert(t.build.clone(), position);
                    plan_item(world, layout, it, t, position == 1, &noted, actions);
                }
                ItemState::Inactive
                | ItemState::Blocked(_)
                | ItemState::Contained
                | ItemState::Refused(_) => {}
            }
        }
    }
    // Gate builds no queue wants: reset (cancelled), retired, or landed and to be reported.
    for (id, b) in &world.builds {
        if b.request.pipeline != PipelineKind::Gate || wanted.contains_key(id) {
            continue;
        }
        let r = &b.request;
        let branch = match &r.cause {
            Some(BuildCause::Gate { branch, .. }) => branch,
            _ => &r.git_ref,
        };
        match b.result {
            _ if b.landed.is_some() => {
                if !b.reported && dependents_settled(world, layout, id, b) {
                    actions.push(Action::Report {
                        build_id: id.clone(),
                    });
                }
            }
            None if !b.cancelled => actions.push(Action::Cancel {
                build_id: id.clone(),
                reason: "reset: the state it tested is no longer wanted (an item ahead of it \
                         left the queue, its branch moved, or the window shrank)"
                    .into(),
            }),
            None => {}
            Some(BuildStatus::Success)
                if world.tips.get(&(r.project.clone(), branch.clone()))
                    == Some(&r.source_commit) =>
            {
                // Landed before a crash took the record: the landing is recorded now.
                actions.push(Action::Land {
                    build_id: id.clone(),
                });
            }
            Some(BuildStatus::Cancelled) => actions.push(Action::Report {
                build_id: id.clone(),
            }),
            Some(_) => actions.push(Action::Retire {
                build_id: id.clone(),
            }),
        }
    }
    wanted
}

/// Whether the builds a landed gate build triggers (the dependents of its project, when
/// post-merge builds nothing of its commit) are requested: it is reported, and done with,
/// only then, so that a failure to request them is retried while it is still here.
fn dependents_settled(world: &World, layout: &Layout, id: &BuildId, b: &super::BuildState) -> bool {
    super::dependents(world, layout, id, b)
        .iter()
        .all(|d| matches!(d, super::Dependent::Settled))
}

/// What one tested item needs: its build requested, landed, held, or reported.
#[allow(clippy::collapsible_match)] // see `plan_gate`
fn plan_item(
    world: &World,
    layout: &Layout,
    it: &Item,
    t: &Tested,
    head: bool,
    noted: &dyn Fn(GateEvent) -> bool,
    actions: &mut Vec<Action>,
) {
    let Some(b) = world.builds.get(&t.build) else {
        if t.failing() && head {
            // Failed before a restart, and the change was never told (reports are off, or
            // Gerrit refused): it is told now, and leaves.
            actions.push(Action::TellGate {
                project: it.project.clone(),
                change: it.change,
                commit: it.commit.clone(),
                note: GateNote {
                    event: GateEvent::Failed,
                    entry: it.entry,
                },
                text: format!(
                    "seakeeper gate: change {},{} failed its gate build {}; it left the queue.",
                    it.change, it.patchset, t.build
                ),
            });
        }
        if !known(world, &t.build) {
            let jobs = match job_names(world, PipelineKind::Gate, &it.project, &it.commit) {
                None => return,
                // An invalid pipeline file is a build with no jobs; its result says why.
                Some(Err(_)) => Vec::new(),
                Some(Ok(names)) => names,
            };
            actions.push(Action::RequestBuild {
                request: gate_request(world, layout, it, t, jobs),
                depth: 0,
            });
        }
        return;
    };
    match b.result {
        None => {}
        Some(BuildStatus::Success) if b.landed.is_some() => {
            if !b.reported && dependents_settled(world, layout, &t.build, b) {
                actions.push(Action::Report {
                    build_id: t.build.clone(),
                });
            }
        }
        Some(BuildStatus::Success) => {
            let tip = world.tips.get(&(it.project.clone(), it.branch.clone()));
            if !head || tip != Some(&t.base) {
                return;
            }
            let short = it.branch.as_str().trim_start_matches("refs/heads/");
            match crate::policy::promotion::freeze_holding(
                layout,
                Held::Merge(&it.project, short),
                world.now,
            ) {
                Some((name, f)) => {
                    let ticket = f
                        .ticket
                        .as_deref()
                        .map(|t| format!(" ({t})"))
                        .unwrap_or_default();
                    let reason = format!(
                        "landing is frozen by {name}{ticket}: {} (config {})",
                        f.reason.trim(),
                        world
                            .freeze_origins
                            .get(name)
                            .map_or(&world.config.layout_commit, |(c, _)| c)
                    );
                    if !noted(GateEvent::Held) {
                        actions.push(Action::TellGate {
                            project: it.project.clone(),
                            change: it.change,
                            commit: it.commit.clone(),
                            note: GateNote {
                                event: GateEvent::Held,
                                entry: it.entry,
                            },
                            text: format!(
                                "seakeeper gate: change {},{} passed and waits at the head of \
                                 its queue: {reason}. It lands once the freeze is lifted.",
                                it.change, it.patchset
                            ),
                        });
                    }
                    actions.push(Action::HoldLanding {
                        build_id: t.build.clone(),
                        reason,
                        freeze: name.clone(),
                    });
                }
                None => actions.push(Action::Land {
                    build_id: t.build.clone(),
                }),
            }
        }
        // A failure is final once nothing ahead of it can change: at the head.
        Some(s) if failed(s) => {
            if head {
                actions.push(Action::Report {
                    build_id: t.build.clone(),
                });
            }
        }
        Some(_) => actions.push(Action::Report {
            build_id: t.build.clone(),
        }),
    }
}

fn gate_request(
    world: &World,
    layout: &Layout,
    it: &Item,
    t: &Tested,
    jobs: Vec<String>,
) -> BuildRequest {
    let git_ref = format!("{SPECULATIVE_REFS}{}", t.speculative)
        .parse()
        .expect("a commit id makes a valid ref name");
    BuildRequest {
        build_id: t.build.clone(),
        pipeline: PipelineKind::Gate,
        project: it.project.clone(),
        change: Some(it.change),
        patchset: Some(it.patchset),
        git_ref,
        source_commit: t.speculative.clone(),
        config_commit: world.config.layout_commit.clone(),
        trust: super::trust_of(layout, PipelineKind::Gate),
        requested_at: world.now,
        jobs,
        cause: Some(BuildCause::Gate {
            queue: layout.queue_of(&it.project),
            branch: it.branch.clone(),
            base: t.base.clone(),
            change_commit: it.commit.clone(),
            ahead: t.ahead.clone(),
            eligible_since: it.entry.since,
            rechecks: it.entry.rechecks,
            votes: it.votes.clone(),
            required: t.required.clone(),
        }),
    }
}
