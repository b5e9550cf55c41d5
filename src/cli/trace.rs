//! `seakeeper trace <DIGEST|BUILD-ID> --ledger LEDGER`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::ledger::{Ledger, Trace};
use crate::model::{BuildId, Digest};

use super::print_json;

#[derive(Debug, Args)]
pub(super) struct TraceArgs {
    /// An artifact digest (sha256:<64 hex>) or a build id.
    target: String,
    /// The ledger repository.
    #[arg(long)]
    ledger: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let ledger = Ledger::open(&args.ledger)?;
    let snapshot = ledger.snapshot()?;
    let trace = if args.target.starts_with("sha256:") {
        let digest: Digest = args.target.parse()?;
        snapshot.trace_digest(&digest)?
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
    if args.json {
        print_json(&trace)?;
    } else {
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
            t.pipeline.as_deref().unwrap_or("?"),
            t.trust.as_deref().unwrap_or("?"),
            t.status.as_deref().unwrap_or("no result yet")
        );
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
