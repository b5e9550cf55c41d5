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
        let id = check_build_id(project, *change, &tested);
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
                        != check_build_id(
                            &r.project,
                            change,
                            &Patchset {
                                patchset,
                                git_ref: r.git_ref.clone(),
                                commit: r.source_commit.clone(),
                                rechecks: *rechecks,
                                review: None,
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

/// A check's speculative state when its change depends on open changes of its project.
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
    let mut deps: Vec<(ChangeNumber, &Patchset)> = review
        .depends_on
        .iter()
        .filter_map(|d| {
            let dp = world.changes.get(&(project.clone(), *d))?;
            let same_branch = dp.review.as_ref().is_none_or(|r| r.branch == review.branch);
            (same_branch && dp.commit != p.commit).then_some((*d, dp))
        })
        .collect();
    if deps.is_empty() {
        return DependsState::Alone;
    }
    deps.sort_by_key(|(n, _)| *n);
    let Some(base) = world.tips.get(&(project.clone(), review.branch.clone())) else {
        return DependsState::Alone;
    };
    let mut state = base.clone();
    let mut ahead = Vec::new();
    let steps = deps
        .iter()
        .map(|(n, dp)| {
            (
                Some((*n, dp.patchset)),
                &dp.commit,
                format!("change {n},{}", dp.patchset),
            )
        })
        .chain(std::iter::once((None, &p.commit, "the change".to_owned())));
    for (dep, commit, label) in steps {
        match world
            .merges
            .get(&(project.clone(), state.clone(), commit.clone()))
        {
            None => {
                return DependsState::Merging(Action::Merge {
                    project: project.clone(),
                    onto: state,
                    commit: commit.clone(),
                    label,
                });
            }
            Some(world::MergeOutcome::Merged(s)) => {
                state = s.clone();
                if let Some((change, patchset)) = dep {
                    ahead.push(crate::model::record::GateItem {
                        project: project.clone(),
                        change,
                        patchset,
                        commit: commit.clone(),
                        state: s.clone(),
                    });
                }
            }
            // It does not merge with what it depends on: checked alone (its own result says
            // whether it is good; the gate will refuse it if it still does not merge).
            Some(_) => return DependsState::Alone,
        }
    }
    DependsState::With(
        state,
        crate::model::record::BuildCause::DependsOn {
            base: base.clone(),
            change_commit: p.commit.clone(),
            ahead,
        },
    )
}
