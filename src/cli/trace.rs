//! `seakeeper trace <DIGEST|BUILD-ID|COMMIT|PROJECT~CHANGE> --ledger LEDGER`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::ledger::{Ledger, Trace};
use crate::model::{BuildId, Digest};

use super::print_json;

#[derive(Debug, Args)]
pub(super) struct TraceArgs {
    /// An artifact digest (sha256:<64 hex>), a build id, a commit the gate landed (40 hex),
    /// or a change (`<project>~<number>`, every build of it).
    target: String,
    /// The ledger repository.
    #[arg(long)]
    ledger: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Verify the ledger first, its trust root pinned to these certs (without --cert or
    /// --config-repo the trace is shown unverified, and says so).
    #[arg(long)]
    cert: Vec<PathBuf>,
    #[command(flatten)]
    trust: super::ledger::TrustArgs,
}

pub(super) fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let ledger = Ledger::open(&args.ledger)?;
    // What the trace shows is only as good as the signatures under it: check them first when
    // told whom to trust, and say so plainly when not.
    let verified = if args.cert.is_empty() && args.trust.config_repo_given().is_none() {
        None
    } else {
        let mut options = crate::ledger::VerifyOptions {
            authority: match args.trust.config_repo_given() {
                Some(_) => super::ledger::authority(&args.cert, &args.trust)?,
                None => None,
            },
            history: super::ledger::history(&args.cert, &args.trust)?,
            ..Default::default()
        };
        if !args.cert.is_empty() {
            let mut ring = crate::signing::Keyring::new();
            for c in &args.cert {
                let bytes = std::fs::read(c)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", c.display()))?;
                ring.add_cert_bytes(&bytes, &c.display().to_string())?;
            }
            options.pinned = Some(ring);
        }
        if let Some(mark) = super::ledger::read_mark(&args.trust)?
            && let Err(e) = mark.check(&ledger)
        {
            eprintln!("not tracing: {e}");
            return Ok(ExitCode::from(1));
        }
        match crate::ledger::verify(&ledger, &options) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("not tracing an unverified ledger: verification failed: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    };
    let snapshot = ledger.snapshot()?;
    let is_commit = args.target.len() == 40 && args.target.bytes().all(|b| b.is_ascii_hexdigit());
    let trace = if args.target.starts_with("sha256:") {
        let digest: Digest = args.target.parse()?;
        snapshot.trace_digest(&digest)?
    } else if is_commit {
        // A landed commit: the gate build that tested it (and the landing, with the change).
        let commit: crate::model::CommitId = args.target.to_lowercase().parse()?;
        match snapshot.landed_as(&commit)? {
            Some(dir) => match dir.rsplit('/').next().map(str::parse::<BuildId>) {
                Some(Ok(id)) => snapshot.trace_build(&id)?,
                _ => None,
            },
            None => None,
        }
    } else if let Some((project, change)) = args.target.rsplit_once('~') {
        // A change: each of its builds, newest patchset first.
        let project: crate::model::ProjectName = project.parse()?;
        let change: crate::model::ChangeNumber = change.parse()?;
        let mut traces = Vec::new();
        for id in snapshot.change_builds(&project, change)? {
            if let Some(t) = snapshot.trace_build(&id)? {
                traces.push(t);
            }
        }
        if traces.is_empty() {
            None
        } else {
            if args.json {
                print_json(&traces)?;
            } else {
                for t in &traces {
                    print_trace(t, "");
                    println!();
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
    } else {
        let id: BuildId = args.target.parse()?;
        snapshot.trace_build(&id)?
    };
    let Some(trace) = trace else {
        eprintln!(
            "{}: the ledger {} has no record of it (tip {})",
            args.target,
            args.ledger.display(),
            snapshot.commit()
        );
        return Ok(ExitCode::from(1));
    };
    let verification = match &verified {
        Some(r) => serde_json::json!({
            "verified": true,
            "commits": r.commits,
            "tip": r.tip,
            "signers_checked_against_trusted_keys": r.authorized,
        }),
        None => serde_json::json!({"verified": false}),
    };
    if args.json {
        let mut value = serde_json::to_value(&trace)?;
        value["verification"] = verification;
        print_json(&value)?;
    } else {
        match &verified {
            Some(r) => println!(
                "verified  {} commits up to {}: every signature{}",
                r.commits,
                r.tip,
                if r.authorized {
                    ", each signer a trusted key with the roles its records need"
                } else {
                    " (trust root pinned with --cert)"
                }
            ),
            None => println!(
                "NOT VERIFIED: read as the ledger stands, no signature checked (pass --cert or \
                 --config-repo to verify first)"
            ),
        }
        print_trace(&trace, "");
    }
    Ok(ExitCode::SUCCESS)
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

pub(super) fn print_trace(t: &Trace, indent: &str) {
    if let Some(d) = &t.digest {
        let what = match (&t.name, &t.kind) {
            (Some(n), Some(k)) => format!(" ({n}, {k})"),
            _ => String::new(),
        };
        println!("{indent}artifact  {d}{what}");
    }
    if let Some(b) = &t.build_id {
        println!(
            "{indent}build     {b} ({}, {}) {}",
            t.pipeline.map_or("?", crate::model::PipelineKind::as_str),
            t.trust.map_or("?", crate::model::Trust::as_str),
            t.status.as_deref().unwrap_or("no result yet")
        );
    }
    match &t.cause {
        Some(crate::model::record::BuildCause::Upstream {
            build_id,
            project,
            commit,
        }) => {
            println!("{indent}cause     after upstream build {build_id} of {project} at {commit}")
        }
        Some(crate::model::record::BuildCause::Schedule { name, tick }) => {
            println!("{indent}cause     schedule {name}, tick {tick}")
        }
        Some(crate::model::record::BuildCause::Merge { change, patchset }) => {
            println!("{indent}cause     merge of change {change} patchset {patchset}")
        }
        Some(crate::model::record::BuildCause::DependsOn {
            base,
            change_commit,
            ahead,
            required,
        }) => {
            for r in required {
                println!(
                    "{indent}          with {} at {} (its Depends-On merged)",
                    r.project, r.commit
                );
            }
            println!(
                "{indent}cause     check with its Depends-On: {} merged onto {base}, then {change_commit}",
                ahead
                    .iter()
                    .map(|a| format!("change {},{}", a.change, a.patchset))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Some(crate::model::record::BuildCause::Gate {
            queue,
            branch,
            base,
            change_commit,
            ahead,
            votes,
            ..
        }) => {
            println!(
                "{indent}cause     gate, queue {queue}: change commit {change_commit} merged onto {branch} at {base}{}",
                if ahead.is_empty() {
                    String::new()
                } else {
                    format!(
                        " with {} ahead",
                        ahead
                            .iter()
                            .map(|a| format!("change {},{}", a.change, a.patchset))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
            println!("{indent}admitted  {}", votes.join(", "));
        }
        None => {}
    }
    if let Some(p) = &t.project {
        let change = match (t.change, t.patchset) {
            (Some(c), Some(p)) => format!(" change {c} patchset {p}"),
            (Some(c), None) => format!(" change {c}"),
            _ => String::new(),
        };
        println!(
            "{indent}source    {p}{change} {}",
            t.git_ref.as_deref().unwrap_or("")
        );
        println!(
            "{indent}          commit {}",
            t.source_commit.as_deref().unwrap_or("?")
        );
    }
    if let Some(l) = &t.landed {
        println!(
            "{indent}landed    change {},{} as {} on {} (was {}), by {} after gate build {} tested exactly it",
            l.change,
            l.patchset,
            l.commit,
            l.branch,
            short(&l.old_tip),
            l.method,
            l.gate_build
        );
        if !l.votes.is_empty() {
            println!("{indent}          admitted by {}", l.votes.join(", "));
        }
        println!(
            "{indent}config    {}",
            t.config_commit.as_deref().unwrap_or("?")
        );
    }
    for r in &t.rebuilt_by {
        println!("{indent}rebuilt   by build {r}");
    }
    for a in &t.attestations {
        println!(
            "{indent}attested  {} (ledger {})",
            a.predicate_type,
            short(&a.ledger_commit)
        );
    }
    for p in &t.promotions {
        println!(
            "{indent}promoted  {} {} at {} from {} to {} (config {}, ledger {}){}",
            p.image,
            p.environment,
            p.promoted_at,
            p.from_registry,
            p.to_registry,
            short(&p.config_commit),
            short(&p.ledger_commit),
            if p.current { " [current]" } else { "" }
        );
    }
    for r in &t.ledger_commits {
        println!(
            "{indent}ledger    {:<14} {} {}",
            r.record,
            short(&r.ledger_commit),
            r.path
        );
    }
    for a in &t.artifacts {
        println!();
        print_trace(a, &format!("{indent}  "));
    }
}
