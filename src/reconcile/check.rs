//! The check pipeline's requests: each open change's newest patchset (with the changes its
//! `Depends-On:` names in its project merged in, as the gate would), and the cancellation of
//! builds a newer patchset or a recheck supersedes.

use std::collections::BTreeMap;

use super::world::{self, Patchset, World};
use super::{Action, CONFIG_CHECK_JOB, Target, check_build_id, job_names, known, request};
use crate::config::Layout;
use crate::config::files::PipelineKind;
use crate::model::{ChangeNumber, CommitId, PatchsetNumber, ProjectName};

pub(super) fn plan_checks(world: &World, layout: &Layout, actions: &mut Vec<Action>) {
    // Builds of older patchsets that a newer one supersedes.
    let mut newest: BTreeMap<(&ProjectName, ChangeNumber), (PatchsetNumber, u32)> = BTreeMap::new();
    for ((project, change), p) in &world.changes {
        newest.insert((project, *change), (p.patchset, p.rechecks));
        let is_config = world.config_project.as_ref() == Some(project);
        let takes_part = layout
            .projects
            .get(project)
            .is_some_and(|f| f.pipelines.contains(&PipelineKind::Check));
        if !is_config && !takes_part {
            continue;
        }
        // With `Depends-On:` changes of its project, it is checked on its branch's tip with
        // them merged (as the gate would), once those merges are made.
        let with = match depends_on_state(world, project, p) {
            DependsState::Alone => None,
            DependsState::Merging(merge) => {
                if !actions.contains(&merge) {
                    actions.push(merge);
                }
                continue;
            }
            DependsState::With(state, cause) => Some((state, cause)),
        };
        let tested = match &with {
            Some((state, _)) => Patchset {
                commit: state.clone(),
                ..p.clone()
            },
            None => p.clone(),
        };
        let required = match &with {
            Some((_, crate::model::record::BuildCause::DependsOn { required, .. })) => {
                required.as_slice()
            }
            _ => &[],
        };
        let id = check_id(project, *change, &tested, required);
        if known(world, &id) {
            continue;
        }
        let jobs = if is_config {
            vec![CONFIG_CHECK_JOB.to_owned()]
        } else {
            match job_names(world, PipelineKind::Check, project, &p.commit) {
                None => continue,
                // An invalid pipeline file is a build with no jobs; its result says why.
                Some(Err(_)) => Vec::new(),
                // Nothing to run: no build, no vote (as Zuul does for a project without jobs).
                Some(Ok(names)) if names.is_empty() => continue,
                Some(Ok(names)) => names,
            }
        };
        let mut r = request(
            world,
            layout,
            PipelineKind::Check,
            id,
            Target {
                project,
                change: Some((*change, p.patchset)),
                git_ref: &p.git_ref,
                commit: &tested.commit,
            },
            jobs,
        );
        r.cause = with.map(|(_, cause)| cause);
        actions.push(Action::RequestBuild {
            request: r,
            depth: 0,
        });
    }
    for (id, b) in &world.builds {
        let r = &b.request;
        if r.pipeline != PipelineKind::Check || b.result.is_some() || b.cancelled {
            continue;
        }
        let (Some(change), Some(patchset)) = (r.change, r.patchset) else {
            continue;
        };
        if let Some((ps, rechecks)) = newest.get(&(&r.project, change)) {
            let superseded = *ps > patchset
                || (*ps == patchset
                    && *id
                        != check_id(
                            &r.project,
                            change,
                            &Patchset {
                                patchset,
                                git_ref: r.git_ref.clone(),
                                commit: r.source_commit.clone(),
                                rechecks: *rechecks,
                                review: None,
                            },
                            match &r.cause {
                                Some(crate::model::record::BuildCause::DependsOn {
                                    required,
                                    ..
                                }) => required,
                                _ => &[],
                            },
                        ));
            if superseded {
                actions.push(Action::Cancel {
                    build_id: id.clone(),
                    reason: if *ps > patchset {
                        format!("superseded by patchset {ps}")
                    } else {
                        "superseded by a recheck".to_owned()
                    },
                });
            }
        }
    }
}

/// A check build's id: its patchset's (at its state), and the states of the other projects
/// it depends on, when there are any.
fn check_id(
    project: &ProjectName,
    change: ChangeNumber,
    p: &Patchset,
    required: &[crate::model::record::RequiredState],
) -> crate::model::BuildId {
    if required.is_empty() {
        return check_build_id(project, change, p);
    }
    let mut state = p.commit.to_string();
    for r in required {
        state.push_str(&format!(" {}@{}", r.project, r.commit));
    }
    super::build_id(
        "check",
        project,
        p.git_ref.as_str(),
        &state,
        &format!("{change}/{}", p.patchset),
        p.rechecks,
    )
}

/// One change to merge: the dependency it is (none for the change itself), its commit, and
/// how the merge names it.
type Step<'a> = (Option<(ChangeNumber, PatchsetNumber)>, &'a CommitId, String);

/// A fold's end: the state after the merges, with the items merged (`None` when one does not
/// merge), or the merge still to make.
type Folded = Result<Option<(CommitId, Vec<crate::model::record::GateItem>)>, Box<Action>>;

/// Folds the merges of `steps` onto `base` in `project`.
fn fold(world: &World, project: &ProjectName, base: &CommitId, steps: &[Step<'_>]) -> Folded {
    let mut state = base.clone();
    let mut ahead = Vec::new();
    for (dep, commit, label) in steps {
        match world
            .merges
            .get(&(project.clone(), state.clone(), (*commit).clone()))
        {
            None => {
                return Err(Box::new(Action::Merge {
                    project: project.clone(),
                    onto: state,
                    commit: (*commit).clone(),
                    label: label.clone(),
                }));
            }
            Some(world::MergeOutcome::Merged(s)) => {
                state = s.clone();
                if let Some((change, patchset)) = dep {
                    ahead.push(crate::model::record::GateItem {
                        project: project.clone(),
                        change: *change,
                        patchset: *patchset,
                        commit: (*commit).clone(),
                        state: s.clone(),
                    });
                }
            }
            Some(_) => return Ok(None),
        }
    }
    Ok(Some((state, ahead)))
}

/// A check's speculative state when its change depends on open changes of its project.
/// (Short-lived, one per patchset a pass looks at: its size does not matter.)
#[allow(clippy::large_enum_variant)]
enum DependsState {
    /// Checked as it is (no such dependency, or they do not merge: then it is checked alone).
    Alone,
    /// A merge of the state is still to be made.
    Merging(Action),
    /// Its state, and the request's cause that says what the state is made of.
    With(CommitId, crate::model::record::BuildCause),
}

fn depends_on_state(world: &World, project: &ProjectName, p: &Patchset) -> DependsState {
    let Some(review) = &p.review else {
        return DependsState::Alone;
    };
    // The open changes it names, by project (change numbers are Gerrit-wide).
    let mut by_project: BTreeMap<&ProjectName, Vec<(ChangeNumber, &Patchset)>> = BTreeMap::new();
    for d in &review.depends_on {
        if let Some(((q, _), dp)) = world.changes.iter().find(|((_, n), _)| n == d) {
            let same_branch = dp.review.as_ref().is_none_or(|r| r.branch == review.branch);
            if dp.commit != p.commit && (q != project || same_branch) {
                by_project.entry(q).or_default().push((*d, dp));
            }
        }
    }
    if by_project.is_empty() {
        return DependsState::Alone;
    }
    let step = |n: ChangeNumber, dp: &Patchset| {
        (
            Some((n, dp.patchset)),
            dp.commit.clone(),
            format!("change {n},{}", dp.patchset),
        )
    };
    // Other projects first: each at its tip (the same branch, else its first known one) with
    // the changes merged; a project whose changes do not merge is left at its tip.
    let mut required = Vec::new();
    for (q, deps) in &by_project {
        if *q == project {
            continue;
        }
        let Some(base) = world
            .tips
            .get(&((*q).clone(), review.branch.clone()))
            .or_else(|| {
                world
                    .tips
                    .iter()
                    .find(|((r, _), _)| r == *q)
                    .map(|(_, c)| c)
            })
        else {
            continue;
        };
        let mut deps = deps.clone();
        deps.sort_by_key(|(n, _)| *n);
        let owned: Vec<_> = deps.iter().map(|(n, dp)| step(*n, dp)).collect();
        let steps: Vec<_> = owned.iter().map(|(d, c, l)| (*d, c, l.clone())).collect();
        match fold(world, q, base, &steps) {
            Err(merge) => return DependsState::Merging(*merge),
            Ok(Some((state, _))) => required.push(crate::model::record::RequiredState {
                project: (*q).clone(),
                commit: state,
            }),
            Ok(None) => {}
        }
    }
    // Its own project: its branch tip with those changes merged, then itself.
    let mine = by_project.get(project).cloned().unwrap_or_default();
    let (state, base, ahead) = if mine.is_empty() {
        (p.commit.clone(), p.commit.clone(), Vec::new())
    } else {
        let Some(base) = world.tips.get(&(project.clone(), review.branch.clone())) else {
            return DependsState::Alone;
        };
        let mut mine = mine;
        mine.sort_by_key(|(n, _)| *n);
        let mut owned: Vec<_> = mine.iter().map(|(n, dp)| step(*n, dp)).collect();
        owned.push((None, p.commit.clone(), "the change".to_owned()));
        let steps: Vec<_> = owned.iter().map(|(d, c, l)| (*d, c, l.clone())).collect();
        match fold(world, project, base, &steps) {
            Err(merge) => return DependsState::Merging(*merge),
            Ok(Some((state, ahead))) => (state, base.clone(), ahead),
            // It does not merge with what it depends on: checked alone (its own result says
            // whether it is good; the gate will refuse it if it still does not merge).
            Ok(None) => (p.commit.clone(), p.commit.clone(), Vec::new()),
        }
    };
    if ahead.is_empty() && required.is_empty() {
        return DependsState::Alone;
    }
    DependsState::With(
        state,
        crate::model::record::BuildCause::DependsOn {
            base,
            change_commit: p.commit.clone(),
            ahead,
            required,
        },
    )
}
