//! `seakeeper demo [--dir DIR]`: builds a small world on this machine with no servers and
//! walks through it. For now it demonstrates the signed ledger (key, init, import, trace,
//! verify); the reconciler's end-to-end flow will join it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::ledger::{self, Ledger, VerifyOptions, Writer, WriterOptions, sample};
use crate::model::Digest;
use crate::signing::{self, Keyring, SigningKey};

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Where to build the demo world (must not exist or be empty).
    #[arg(long, default_value = "seakeeper-demo")]
    dir: PathBuf,
    /// How many sample builds to record (each is about five records).
    #[arg(long, default_value_t = 200)]
    builds: u64,
}

pub(super) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!(
            "{} already exists and is not empty; pass --dir to choose another place",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = std::time::Instant::now();

    println!("1. A signing key for the CI (OpenPGP v4, Ed25519)");
    let (secret, public) = signing::generate_key("seakeeper demo CI <ci@demo.invalid>")?;
    let key_path = dir.join("ci-key.asc");
    let cert_path = dir.join("ci-cert.asc");
    signing::write_new_file(&key_path, &secret, 0o600)?;
    signing::write_new_file(&cert_path, &public, 0o644)?;
    let mut key = SigningKey::from_bytes(&secret, "the demo key")?;
    println!("   {} -> {}", key.fingerprint(), key_path.display());

    println!("2. The ledger: a bare git repository whose first commit is signed");
    let ledger_path = dir.join("ledger");
    let (_, first) = Ledger::init(&ledger_path, &mut key)?;
    println!("   {} at {first}", ledger_path.display());

    println!(
        "3. Recording {} builds from several producers at once (group commit)",
        args.builds
    );
    let writer = Writer::open(&ledger_path, key, WriterOptions::default())?;
    let producers = 4;
    let results: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let writer = writer.clone();
                let builds = args.builds;
                s.spawn(move || {
                    let mut n = 0;
                    let mut b = p;
                    while b < builds {
                        for r in writer.append_all(sample::build_records(b)) {
                            if r.is_ok() {
                                n += 1;
                            }
                        }
                        b += producers;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    writer.shutdown();
    let l = Ledger::open(&ledger_path)?;
    let commits = l.log(usize::MAX)?.len();
    println!(
        "   {} records in {} signed commits",
        results.iter().sum::<usize>(),
        commits
    );

    println!("4. Tracing an image from its build to its promotion");
    let digest = Digest::of(b"image 0");
    let snapshot = l.snapshot()?;
    if let Some(trace) = snapshot.trace_digest(&digest)? {
        super::trace::print_trace(&trace, "   ");
    }

    println!("5. Verifying every commit: signatures, keys, schemas, indexes");
    let mut ring = Keyring::new();
    ring.add_cert_bytes(&public, "the demo cert")?;
    let report = ledger::verify(&l, &VerifyOptions { pinned: Some(ring) })?;
    println!(
        "   ok: {} commits, {} records",
        report.commits, report.records
    );

    println!(
        "\nDone in {:.1} s. Explore with seakeeper and plain git:",
        started.elapsed().as_secs_f64()
    );
    let lp = ledger_path.display();
    let exe = std::env::current_exe()
        .map_or_else(|_| "seakeeper".to_owned(), |p| p.display().to_string());
    println!("   {exe} ledger log {lp}");
    println!("   {exe} trace {digest} --ledger {lp}");
    println!("   {exe} ledger verify {lp} --cert {}", cert_path.display());
    println!("   git -C {lp} log --format='%h %s' | head");
    println!(
        "   GNUPGHOME=$(mktemp -d) sh -c 'gpg --import {} && git -C {lp} verify-commit HEAD'",
        cert_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
