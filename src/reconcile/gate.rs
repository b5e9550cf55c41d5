//! The gate, pure: which approved changes wait in which queue and in what order, the
//! speculative state each active item is tested on, and what to do next (merge, test, land,
//! hold, retire, tell). Zuul's dependent pipeline, with one difference that matters: the
//! commit an item is tested on is the commit that lands.
//!
//! A queue is computed afresh from the World on every plan, never kept: the eligible changes
//! (open, ready, not private, with the votes the config asks for) ordered by when they became
//! eligible, a change after the changes it depends on. An item's state is its branch tip with
//! the items ahead of it in the same project and branch merged in order, then itself; each
//! merge is made once by apply ([`Action::Merge`]) and remembered as a [`MergeOutcome`], so a
//! state is a fold over remembered merges and its gate build's id follows from its commit. An
//! item that fails leaves the chains of the items behind it at once (their states, and so
//! their builds, change: that is the reset), and leaves the queue when it reaches the head.

use std::collections::{BTreeMap, BTreeSet};

use super::world::{GateEntry, GateEvent, GateNote, MergeOutcome, Review, World};
use super::{branch_watched, build_id, takes_part};
use crate::config::Layout;
use crate::config::files::{PipelineKind, VoteRequirement};
use crate::model::record::{BuildCause, BuildRequest, GateItem, RequiredState};
use crate::model::{
    BuildId, BuildStatus, ChangeNumber, CommitId, PatchsetNumber, ProjectName, RefName, Timestamp,
};

/// Where speculative states are published in a project's repository (the same as
/// `git::speculative::SPECULATIVE_REFS`, which a test keeps equal).
pub const SPECULATIVE_REFS: &str = "refs/seakeeper/speculative/";

/// How many times one state's gate build is run again after being cancelled (a window that
/// shrank and grew) before the item gives up.
const MAX_STATE_ATTEMPTS: u32 = 50;

/// A gate queue as planned now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// `queue:<name>` (shared by the projects naming it) or `project:<project>`.
    pub name: String,
    /// How many items are tested at once.
    pub window: u32,
    /// The items, head first.
    pub items: Vec<Item>,
    /// Approved changes of the queue's projects that cannot enter yet, and why.
    pub waiting: Vec<(ProjectName, ChangeNumber, String)>,
}

/// A change in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its project.
    pub project: ProjectName,
    /// The change.
    pub change: ChangeNumber,
    /// Its patchset.
    pub patchset: PatchsetNumber,
    /// The patchset's commit.
    pub commit: CommitId,
    /// The branch it lands on.
    pub branch: RefName,
    /// Its entry (patchset, eligible since, rechecks).
    pub entry: GateEntry,
    /// The votes that admitted it.
    pub votes: Vec<String>,
    /// Where it stands.
    pub state: ItemState,
}

/// Where an item stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemState {
    /// Beyond the window: waits for room.
    Inactive,
    /// Waits for something (said in words).
    Blocked(String),
    /// Its speculative state is being made by merging it onto `onto`.
    Merging {
        /// The state it is merged onto.
        onto: CommitId,
    },
    /// It cannot be tested (a conflict, a missing parent, a dependency cycle): it is told why
    /// and leaves.
    Refused(String),
    /// Its commit is on its branch already (it landed): Gerrit closes it.
    Contained,
    /// Tested (or to be tested) on a speculative state.
    Testing(Tested),
}

/// An item's speculative state and its gate build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tested {
    /// The gate build of this state.
    pub build: BuildId,
    /// The branch tip the state starts from.
    pub base: CommitId,
    /// The state: the commit that is tested and lands.
    pub speculative: CommitId,
    /// The items ahead whose changes the state holds.
    pub ahead: Vec<GateItem>,
    /// The other projects its jobs require, at the queue's state of each.
    pub required: Vec<RequiredState>,
    /// The build's outcome, once known.
    pub result: Option<BuildStatus>,
}

impl Tested {
    /// Whether its build failed (the item is failing: out of the chains behind it).
    pub fn failing(&self) -> bool {
        self.result.is_some_and(failed)
    }
}

pub(super) fn failed(s: BuildStatus) -> bool {
    matches!(
        s,
        BuildStatus::Failure | BuildStatus::Error | BuildStatus::TimedOut
    )
}

/// The id of the gate build of a change's entry on a speculative state, with the states of
/// the projects its jobs require (`attempt`: after the same state's build was cancelled).
pub fn gate_build_id(
    project: &ProjectName,
    branch: &RefName,
    speculative: &CommitId,
    change: ChangeNumber,
    entry: &GateEntry,
    required: &[RequiredState],
    attempt: u32,
) -> BuildId {
    let mut state = speculative.to_string();
    for r in required {
        state.push_str(&format!(" {}@{}", r.project, r.commit));
    }
    build_id(
        "gate",
        project,
        branch.as_str(),
        &state,
        &format!("{change}/{}", entry.token()),
        attempt,
    )
}

/// The projects the gate jobs of a change's pipeline file require (none until it is read).
fn required_projects(
    world: &World,
    project: &ProjectName,
    commit: &CommitId,
) -> BTreeSet<ProjectName> {
    world
        .pipelines
        .get(&(project.clone(), commit.clone()))
        .and_then(|p| p.as_ref().ok())
        .and_then(|p| p.get(&PipelineKind::Gate))
        .map(|jobs| {
            jobs.iter()
                .flat_map(|j| j.requires.iter().cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// A queue's window after a landing (one more) or a failure (halved), never below the floor:
/// Zuul's linear increase and exponential decrease.
pub fn next_window(now: u32, landed: bool, settings: &crate::config::files::GateSettings) -> u32 {
    let next = if landed {
        now.saturating_add(1)
    } else {
        now / 2
    };
    next.max(settings.window_floor).max(1)
}

/// A queue's window now (`windows`: where it moved from the configured start).
pub fn window_of(
    windows: &BTreeMap<String, u32>,
    queue: &str,
    settings: &crate::config::files::GateSettings,
) -> u32 {
    windows
        .get(queue)
        .copied()
        .unwrap_or(settings.window)
        .max(settings.window_floor)
        .max(1)
}

/// Whether a change's votes admit it: when it became eligible (the latest of the times each
/// requirement was first met) and the votes that admit it; or why not.
pub fn eligibility(
    review: &Review,
    require: &[VoteRequirement],
) -> Result<(Timestamp, Vec<String>), String> {
    if review.wip {
        return Err("it is a work in progress".into());
    }
    if review.private {
        return Err("it is private".into());
    }
    let epoch = Timestamp::from_second(0).expect("the epoch");
    let mut since = epoch;
    let mut votes = Vec::new();
    for r in require {
        let on_label = review.votes.iter().filter(|v| v.label == r.label);
        if let Some(veto) = on_label.clone().find(|v| v.value <= -r.value) {
            return Err(format!("{}{} by {}", r.label, veto.value, veto.by));
        }
        let admitting: Vec<_> = on_label.filter(|v| v.value >= r.value).collect();
        let Some(first) = admitting.iter().min_by_key(|v| v.date.unwrap_or(epoch)) else {
            return Err(format!("it needs {}+{}", r.label, r.value));
        };
        since = since.max(first.date.unwrap_or(epoch));
        votes.push(format!("{}+{} by {}", r.label, first.value, first.by));
    }
    Ok((since, votes))
}

/// An eligible change before it is placed.
struct Candidate {
    project: ProjectName,
    change: ChangeNumber,
    patchset: PatchsetNumber,
    commit: CommitId,
    branch: RefName,
    entry: GateEntry,
    votes: Vec<String>,
    /// Open changes it depends on (git parents and `Depends-On:`).
    deps: Vec<(ProjectName, ChangeNumber)>,
}

/// Whether a note ends an entry's time in the gate.
fn ends(note: &GateNote, entry: &GateEntry) -> bool {
    note.entry == *entry
        && matches!(
            note.event,
            GateEvent::Failed | GateEvent::Refused | GateEvent::Landed
        )
}

/// The notes a change has been given (or is being given), from Gerrit and from apply.
pub fn notes<'w>(
    world: &'w World,
    review: &'w Review,
    project: &ProjectName,
    change: ChangeNumber,
) -> impl Iterator<Item = &'w GateNote> {
    review.notes.iter().chain(
        world
            .gate_notes
            .get(&(project.clone(), change))
            .into_iter()
            .flatten(),
    )
}

fn candidates(world: &World, layout: &Layout) -> Vec<Candidate> {
    let mut by_commit: BTreeMap<(&ProjectName, &CommitId), ChangeNumber> = BTreeMap::new();
    let mut by_number: BTreeMap<ChangeNumber, &ProjectName> = BTreeMap::new();
    for ((project, change), p) in &world.changes {
        by_commit.insert((project, &p.commit), *change);
        by_number.insert(*change, project);
    }
    let mut out = Vec::new();
    for ((project, change), p) in &world.changes {
        let Some(review) = &p.review else { continue };
        if world.config_project.as_ref() == Some(project)
            || !takes_part(layout, project, PipelineKind::Gate)
            || !branch_watched(layout, project, &review.branch)
        {
            continue;
        }
        let Ok((since, votes)) = eligibility(review, layout.gate_requirements(project)) else {
            continue;
        };
        let entry = GateEntry {
            patchset: p.patchset,
            since,
            rechecks: p.rechecks,
        };
        if notes(world, review, project, *change).any(|n| ends(n, &entry)) {
            continue;
        }
        let mut deps = Vec::new();
        for parent in &review.parents {
            if let Some(d) = by_commit.get(&(project, parent))
                && d != change
            {
                deps.push((project.clone(), *d));
            }
        }
        for d in &review.depends_on {
            if let Some(p) = by_number.get(d)
                && d != change
                && !deps.contains(&((*p).clone(), *d))
            {
                deps.push(((*p).clone(), *d));
            }
        }
        out.push(Candidate {
            project: project.clone(),
            change: *change,
            patchset: p.patchset,
            commit: p.commit.clone(),
            branch: review.branch.clone(),
            entry,
            votes,
            deps,
        });
    }
    out
}

/// The queues, head first, with every item's state.
pub fn queues(world: &World, layout: &Layout) -> Vec<Queue> {
    let all = candidates(world, layout);
    let index: BTreeMap<(ProjectName, ChangeNumber), usize> = all
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.project.clone(), c.change), i))
        .collect();
    // Changes that cannot enter: a dependency that is open but not eligible (or in another
    // queue), transitively; dependency cycles are refused.
    let queue_of: Vec<String> = all.iter().map(|c| layout.queue_of(&c.project)).collect();
    let mut blocked: BTreeMap<usize, String> = BTreeMap::new();
    let mut refused: BTreeMap<usize, String> = BTreeMap::new();
    for (i, c) in all.iter().enumerate() {
        if let Some(cycle) = cycle_from(&all, &index, i) {
            refused.insert(i, format!("its dependencies form a cycle: {cycle}"));
            continue;
        }
        for d in &c.deps {
            match index.get(d) {
                None => {
                    blocked.insert(
                        i,
                        format!(
                            "it depends on change {} of {}, which is not approved for the gate",
                            d.1, d.0
                        ),
                    );
                }
                Some(&j) if queue_of[j] != queue_of[i] => {
                    blocked.insert(
                        i,
                        format!(
                            "it depends on change {} of {}, which waits in another queue ({}): \
                             it enters once that one landed",
                            d.1, d.0, queue_of[j]
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
    // What depends on something blocked is blocked too.
    loop {
        let before = blocked.len();
        for (i, c) in all.iter().enumerate() {
            if blocked.contains_key(&i) || refused.contains_key(&i) {
                continue;
            }
            if let Some(d) = c.deps.iter().find(|d| {
                index
                    .get(*d)
                    .is_some_and(|j| blocked.contains_key(j) || refused.contains_key(j))
            }) {
                blocked.insert(
                    i,
                    format!(
                        "it depends on change {} of {}, which cannot enter yet",
                        d.1, d.0
                    ),
                );
            }
        }
        if blocked.len() == before {
            break;
        }
    }
    let mut by_queue: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, q) in queue_of.iter().enumerate() {
        by_queue.entry(q.as_str()).or_default().push(i);
    }
    let gate = &layout.settings.gate;
    let mut out = Vec::new();
    for (name, members) in by_queue {
        let window = window_of(&world.windows, name, gate);
        let mut waiting = Vec::new();
        let mut order: Vec<usize> = Vec::new();
        let mut refusals = Vec::new();
        for &i in &members {
            if let Some(why) = blocked.get(&i) {
                waiting.push((all[i].project.clone(), all[i].change, why.clone()));
            } else if let Some(why) = refused.get(&i) {
                refusals.push((i, why.clone()));
            } else {
                order.push(i);
            }
        }
        // By eligibility, then each change after what it depends on.
        order.sort_by(|a, b| {
            let (a, b) = (&all[*a], &all[*b]);
            (a.entry.since, &a.project, a.change).cmp(&(b.entry.since, &b.project, b.change))
        });
        let mut placed: Vec<usize> = Vec::new();
        let mut rest = order;
        while !rest.is_empty() {
            let pick = rest
                .iter()
                .position(|&i| {
                    all[i]
                        .deps
                        .iter()
                        .all(|d| index.get(d).is_none_or(|j| placed.contains(j)))
                })
                .unwrap_or(0);
            placed.push(rest.remove(pick));
        }
        let mut items: Vec<Item> = placed
            .iter()
            .map(|&i| item(&all[i], ItemState::Inactive))
            .collect();
        states(world, &mut items, window);
        for (i, why) in refusals {
            items.push(item(&all[i], ItemState::Refused(why)));
        }
        out.push(Queue {
            name: name.to_owned(),
            window,
            items,
            waiting,
        });
    }
    out
}

fn item(c: &Candidate, state: ItemState) -> Item {
    Item {
        project: c.project.clone(),
        change: c.change,
        patchset: c.patchset,
        commit: c.commit.clone(),
        branch: c.branch.clone(),
        entry: c.entry,
        votes: c.votes.clone(),
        state,
    }
}

/// A dependency cycle through candidate `start`, in words (`change 1 -> change 2 -> change 1`).
fn cycle_from(
    all: &[Candidate],
    index: &BTreeMap<(ProjectName, ChangeNumber), usize>,
    start: usize,
) -> Option<String> {
    // Depth-first from `start`, looking for a way back to it.
    let mut stack = vec![(start, vec![start])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for d in &all[at].deps {
            let Some(&j) = index.get(d) else { continue };
            if j == start {
                let mut words: Vec<String> = path
                    .iter()
                    .map(|&k| format!("change {}", all[k].change))
                    .collect();
                words.push(format!("change {}", all[start].change));
                return Some(words.join(" -> "));
            }
            if seen.insert(j) {
                let mut next = path.clone();
                next.push(j);
                stack.push((j, next));
            }
        }
    }
    None
}

/// Each item's state, head first: its speculative state is its branch's tip with the items
/// ahead of it (same project and branch, not failing) merged, then itself.
fn states(world: &World, items: &mut [Item], window: u32) {
    // Per project and branch: the tip, the state so far and the items in it; `None` once an
    // item's merge is not known yet (the items behind wait for it).
    type Chain = Option<(CommitId, CommitId, Vec<GateItem>)>;
    let mut chains: BTreeMap<(ProjectName, RefName), Chain> = BTreeMap::new();
    for (i, it) in items.iter_mut().enumerate() {
        if i as u32 >= window {
            it.state = ItemState::Inactive;
            continue;
        }
        // The projects its jobs require: the queue's state of each (its tip with the items
        // ahead of this one merged), else its tip.
        let mut required = Vec::new();
        let mut unknown = None;
        for p in required_projects(world, &it.project, &it.commit) {
            let slot = (p.clone(), it.branch.clone());
            let at = match chains.get(&slot) {
                Some(Some((_, state, _))) => Some(state.clone()),
                Some(None) => None,
                // Its tip on the same branch, else on any branch it has (as the job's
                // checkout does).
                None => world.tips.get(&slot).cloned().or_else(|| {
                    world
                        .tips
                        .iter()
                        .find(|((q, _), _)| *q == p)
                        .map(|(_, c)| c.clone())
                }),
            };
            match at {
                Some(commit) => required.push(RequiredState { project: p, commit }),
                None => unknown = Some(p),
            }
        }
        if let Some(p) = unknown {
            it.state = ItemState::Blocked(format!(
                "the state of {p} on {} (its jobs require it) is not known yet",
                it.branch
            ));
            continue;
        }
        let slot = (it.project.clone(), it.branch.clone());
        let Some(tip) = world.tips.get(&slot) else {
            it.state = ItemState::Blocked(format!(
                "the tip of {} in {} is not known yet",
                it.branch, it.project
            ));
            continue;
        };
        let chain = chains
            .entry(slot)
            .or_insert_with(|| Some((tip.clone(), tip.clone(), Vec::new())));
        let Some((base, state, ahead)) = chain.clone() else {
            it.state = ItemState::Blocked("it waits for the state of the items ahead of it".into());
            continue;
        };
        match world
            .merges
            .get(&(it.project.clone(), state.clone(), it.commit.clone()))
        {
            None => {
                it.state = ItemState::Merging { onto: state };
                *chain = None;
            }
            Some(MergeOutcome::Conflict(paths)) if !ahead.is_empty() => {
                // Only the tip itself is final: an item ahead it conflicts with may still
                // fail and leave (Zuul reports a merge failure only at the head, too).
                it.state = ItemState::Blocked(format!(
                    "it conflicts with {} ahead of it (in {}): it is tried again once they \
                     landed or left",
                    ahead
                        .iter()
                        .map(|a| format!("change {},{}", a.change, a.patchset))
                        .collect::<Vec<_>>()
                        .join(", "),
                    paths.join(", ")
                ));
            }
            Some(MergeOutcome::Conflict(paths)) => {
                it.state = ItemState::Refused(format!(
                    "it does not merge onto {} (the tip of {}{}): conflicts in {}",
                    state,
                    it.branch,
                    if ahead.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " with {} ahead of it",
                            ahead
                                .iter()
                                .map(|a| format!("change {},{}", a.change, a.patchset))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                    paths.join(", ")
                ));
            }
            Some(MergeOutcome::MissingParents(parents)) => {
                it.state = ItemState::Refused(format!(
                    "its commit is built on {}, which is neither on {} nor a change ahead of it \
                     in the gate (an outdated patchset of another change?): rebase it",
                    parents
                        .iter()
                        .map(CommitId::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    it.branch
                ));
            }
            Some(MergeOutcome::Merged(s)) if *s == state => {
                it.state = if state == base {
                    ItemState::Contained
                } else {
                    ItemState::Blocked("an item ahead of it holds its commit already".into())
                };
            }
            Some(MergeOutcome::Merged(s)) => {
                let mut attempt = 0;
                let mut id;
                loop {
                    id = gate_build_id(
                        &it.project,
                        &it.branch,
                        s,
                        it.change,
                        &it.entry,
                        &required,
                        attempt,
                    );
                    let retry = world.gate_done.get(&id).is_some_and(|(_, _, st)| {
                        matches!(st, BuildStatus::Cancelled | BuildStatus::Success)
                    });
                    if !retry || attempt >= MAX_STATE_ATTEMPTS {
                        break;
                    }
                    attempt += 1;
                }
                if world.gate_done.get(&id).is_some_and(|(_, _, st)| {
                    matches!(st, BuildStatus::Cancelled | BuildStatus::Success)
                }) {
                    it.state = ItemState::Refused(format!(
                        "its state {s} was cancelled {MAX_STATE_ATTEMPTS} times: it is taken out \
                         rather than tested forever"
                    ));
                    continue;
                }
                let result = world
                    .builds
                    .get(&id)
                    .and_then(|b| b.result)
                    .or_else(|| world.gate_done.get(&id).map(|(_, _, st)| *st));
                let tested = Tested {
                    build: id,
                    base: base.clone(),
                    speculative: s.clone(),
                    ahead: ahead.clone(),
                    required,
                    result,
                };
                if !tested.failing() {
                    let mut next = ahead.clone();
                    next.push(GateItem {
                        project: it.project.clone(),
                        change: it.change,
                        patchset: it.patchset,
                        commit: it.commit.clone(),
                        state: s.clone(),
                    });
                    *chain = Some((base, s.clone(), next));
                }
                it.state = ItemState::Testing(tested);
            }
        }
    }
}

/// The commit a build's jobs are defined at: a gate build runs the jobs its change's own
/// pipeline file names (what was reviewed), whatever state it is tested on.
pub fn pipeline_commit(request: &BuildRequest) -> &CommitId {
    match &request.cause {
        Some(
            BuildCause::Gate { change_commit, .. } | BuildCause::DependsOn { change_commit, .. },
        ) => change_commit,
        _ => &request.source_commit,
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
