//! `seakeeper ledger init|import|log|show|verify|keys`.

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::ledger::{self, Ledger, VerifyOptions, Writer, WriterOptions};
use crate::model::{BuildId, Record};
use crate::signing::{Keyring, SigningKey};

use super::print_json;

#[derive(Debug, Subcommand)]
pub(super) enum LedgerCommand {
    /// Create a new ledger: a bare repository with a signed first commit.
    Init {
        /// Where to create it (must not exist or be empty).
        ledger: PathBuf,
        /// The secret key that signs, and is the first allowed signer.
        #[arg(long)]
        key: PathBuf,
    },
    /// Import records, one JSON object per line on stdin, each with a "record" field naming
    /// its kind. All lines are checked first: one bad line refuses the whole import.
    Import(ImportArgs),
    /// List ledger commits, newest first.
    Log {
        /// The ledger repository.
        ledger: PathBuf,
        /// At most this many commits.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a file or directory at the tip (PATH), or a commit (COMMIT id).
    Show {
        /// The ledger repository.
        ledger: PathBuf,
        /// A path such as `builds/2026/11/22/02/b1/request.yaml`, or a commit id.
        target: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify every commit: signatures, allowed keys and rotations, record schemas,
    /// append-only history and indexes. Exits 1 naming the first bad commit.
    Verify {
        /// The ledger repository.
        ledger: PathBuf,
        /// Pin the trust root: the first commit must be signed by one of these certs.
        #[arg(long)]
        cert: Vec<PathBuf>,
        #[command(flatten)]
        trust: TrustArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Adopt the commits of a ledger remote: fetched into a quarantine ref, then adopted only
    /// when they extend this ledger (and its high-water mark) and every commit verifies
    /// against the trusted keys and their roles. Exits 1, adopting nothing, on any refusal.
    Pull {
        /// The ledger repository (created empty when it does not exist).
        ledger: PathBuf,
        /// The remote (URL or path).
        remote: String,
        /// Certs trusted with every role (at least one of these or --config-repo is needed).
        #[arg(long)]
        cert: Vec<PathBuf>,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Change which keys may sign the ledger (signed by a key allowed now).
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// Where the trusted keys and the high-water mark come from.
#[derive(Debug, Args)]
pub(super) struct TrustArgs {
    /// Check every signer against the config repo's `keys/` and their roles (a local clone
    /// or bare repository).
    #[arg(long)]
    config_repo: Option<PathBuf>,
    /// The config revision whose `keys/` count.
    #[arg(long, default_value = "HEAD")]
    config_rev: String,
    /// A high-water mark file (a server's `<state_dir>/ledger.mark`): the ledger's head must
    /// be that commit or a descendant of it.
    #[arg(long)]
    mark: Option<PathBuf>,
}

/// The keys of `--config-repo` with their roles, and `certs` with every role; `None` when
/// neither is given.
impl TrustArgs {
    /// The config repo, when given.
    pub(super) fn config_repo_given(&self) -> Option<&PathBuf> {
        self.config_repo.as_ref()
    }
}

/// The keys at each config commit of `--config-repo` (with `certs`), for judging each record
/// at the config commit it names; `None` without a config repo.
pub(super) fn history(
    certs: &[PathBuf],
    trust: &TrustArgs,
) -> anyhow::Result<Option<crate::ledger::verify::History>> {
    use crate::model::KeyRole;
    let Some(repo) = &trust.config_repo else {
        return Ok(None);
    };
    let mut base = crate::signing::Authority::new();
    for c in certs {
        let bytes = std::fs::read(c).with_context(|| format!("reading {}", c.display()))?;
        base.add(&bytes, &c.display().to_string(), KeyRole::ALL)?;
    }
    // A worktree's repository is its .git directory.
    let git_dir = if repo.join(".git").is_dir() {
        repo.join(".git")
    } else {
        repo.clone()
    };
    Ok(Some(crate::daemon::key_history(
        git_dir,
        trust.config_rev.clone(),
        base,
    )))
}

pub(super) fn authority(
    certs: &[PathBuf],
    trust: &TrustArgs,
) -> anyhow::Result<Option<crate::signing::Authority>> {
    use crate::model::KeyRole;
    if certs.is_empty() && trust.config_repo.is_none() {
        return Ok(None);
    }
    let mut authority = crate::signing::Authority::new();
    for c in certs {
        let bytes = std::fs::read(c).with_context(|| format!("reading {}", c.display()))?;
        authority.add(&bytes, &c.display().to_string(), KeyRole::ALL)?;
    }
    if let Some(repo) = &trust.config_repo {
        let layout = match super::pipeline::load_layout(repo, &trust.config_rev)? {
            Ok((_, layout)) => layout,
            Err((commit, errors)) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                anyhow::bail!(
                    "the config at {commit} is invalid ({} errors): its keys/ cannot be trusted",
                    errors.len()
                );
            }
        };
        crate::daemon::add_config_keys(&mut authority, &layout)?;
    }
    Ok(Some(authority))
}

pub(super) fn read_mark(trust: &TrustArgs) -> anyhow::Result<Option<ledger::mark::Mark>> {
    match &trust.mark {
        None => Ok(None),
        Some(p) => match ledger::mark::Mark::read(p)? {
            Some(m) => Ok(Some(m)),
            None => anyhow::bail!("{}: no such mark file", p.display()),
        },
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Allow another key to sign.
    Add {
        /// The ledger repository.
        ledger: PathBuf,
        /// A secret key that is allowed now; it signs the change.
        #[arg(long)]
        key: PathBuf,
        /// The public cert of the key to allow.
        #[arg(long)]
        cert: PathBuf,
    },
    /// Stop allowing a key.
    Remove {
        /// The ledger repository.
        ledger: PathBuf,
        /// A secret key that is allowed now; it signs the change.
        #[arg(long)]
        key: PathBuf,
        /// Fingerprint of the key to remove.
        #[arg(long)]
        fingerprint: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// The ledger repository.
    ledger: PathBuf,
    /// The secret key that signs the commits.
    #[arg(long)]
    key: PathBuf,
    /// Write the valid lines and report the invalid ones instead of refusing the import.
    #[arg(long)]
    skip_invalid: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LedgerCommand::Init { ledger, key } => {
            let mut key = SigningKey::load(&key)?;
            let (_, commit) = Ledger::init(&ledger, &mut key)?;
            println!(
                "initialized ledger {} at commit {commit}, signer {}",
                ledger.display(),
                key.fingerprint()
            );
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Import(args) => import(args),
        LedgerCommand::Log {
            ledger,
            limit,
            json,
        } => {
            let l = Ledger::open(&ledger)?;
            for c in l.log(limit)? {
                if json {
                    print_json(&c)?;
                } else {
                    println!("{} {} {}", &c.commit[..12], c.time, c.summary);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Show {
            ledger,
            target,
            json,
        } => show(ledger, target, json),
        LedgerCommand::Pull {
            ledger,
            remote,
            cert,
            trust,
        } => {
            let Some(authority) = authority(&cert, &trust)? else {
                anyhow::bail!(
                    "pull needs the keys to trust: --cert (every role) and/or --config-repo \
                     (its keys/ with their roles)"
                );
            };
            let mark = read_mark(&trust)?;
            if !ledger.exists() {
                std::fs::create_dir_all(&ledger)?;
                crate::git::mirror::run_git(&ledger, &["init", "--quiet", "--bare"], None)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", ledger.display()))?;
                std::fs::write(
                    ledger.join("HEAD"),
                    format!("ref: {}\n", ledger::LEDGER_REF),
                )?;
            }
            let options = VerifyOptions {
                pinned: None,
                authority: Some(authority),
                history: history(&cert, &trust)?,
            };
            match ledger::pull::pull(&ledger, &remote, None, &options, mark.as_ref()) {
                Ok(p) if p.before.as_deref() == Some(p.after.as_str()) => {
                    println!("up to date at {}", p.after);
                    Ok(ExitCode::SUCCESS)
                }
                Ok(p) => {
                    println!(
                        "adopted {} (was {}): {} commits, {} records verified",
                        p.after,
                        p.before.as_deref().unwrap_or("empty"),
                        p.commits,
                        p.records
                    );
                    if let Some(path) = &trust.mark
                        && let Some(m) = ledger::mark::Mark::of(&Ledger::open(&ledger)?)?
                    {
                        m.write(path)?;
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("refused: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        LedgerCommand::Verify {
            ledger,
            cert,
            trust,
            json,
        } => {
            let l = Ledger::open(&ledger)?;
            // --cert alone pins the trust root (rotations inside the ledger are followed);
            // with --config-repo every signer must also be a trusted key with its roles.
            let mut options = VerifyOptions {
                authority: match trust.config_repo {
                    Some(_) => authority(&cert, &trust)?,
                    None => None,
                },
                history: history(&cert, &trust)?,
                ..VerifyOptions::default()
            };
            if let Some(mark) = read_mark(&trust)?
                && let Err(e) = mark.check(&l)
            {
                if json {
                    print_json(
                        &serde_json::json!({"ok": false, "commit": "-", "reason": e.to_string()}),
                    )?;
                }
                eprintln!("verification failed: {e}");
                return Ok(ExitCode::from(1));
            }
            if !cert.is_empty() {
                let mut ring = Keyring::new();
                for c in &cert {
                    let bytes =
                        std::fs::read(c).with_context(|| format!("reading {}", c.display()))?;
                    ring.add_cert_bytes(&bytes, &c.display().to_string())?;
                }
                options.pinned = Some(ring);
            }
            match ledger::verify(&l, &options) {
                Ok(report) => {
                    if json {
                        print_json(&report)?;
                    } else {
                        println!(
                            "ok: {} commits, {} records verified; tip {}; signers now: {}{}",
                            report.commits,
                            report.records,
                            report.tip,
                            report.signers.join(", "),
                            match (report.pinned, report.authorized) {
                                (_, true) =>
                                    " (every signer checked against the trusted keys and roles)",
                                (true, false) => "",
                                (false, false) =>
                                    " (trust root taken from the first commit; pin it with --cert)",
                            }
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(failure) => {
                    if json {
                        print_json(
                            &serde_json::json!({"ok": false, "commit": failure.commit, "reason": failure.reason}),
                        )?;
                    }
                    eprintln!("verification failed: {failure}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        LedgerCommand::Keys(KeysCommand::Add { ledger, key, cert }) => {
            let l = Ledger::open(&ledger)?;
            let mut key = SigningKey::load(&key)?;
            let bytes =
                std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?;
            let commit = l.rotate_keys(&mut key, &[bytes], &[])?;
            println!("allowed signers changed at commit {commit}");
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Keys(KeysCommand::Remove {
            ledger,
            key,
            fingerprint,
        }) => {
            let l = Ledger::open(&ledger)?;
            let mut key = SigningKey::load(&key)?;
            let commit = l.rotate_keys(&mut key, &[], &[fingerprint.to_uppercase()])?;
            println!("allowed signers changed at commit {commit}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let key = SigningKey::load(&args.key)?;
    // Refuse a key the ledger does not allow before reading any input.
    let writer = Writer::open(&args.ledger, key, WriterOptions::default())?;
    let ledger = Ledger::open(&args.ledger)?;
    let snapshot = ledger.snapshot()?;

    let stdin = std::io::stdin();
    let mut records = Vec::new();
    let mut bad: Vec<(usize, String)> = Vec::new();
    let mut requested: HashSet<BuildId> = HashSet::new();
    for (i, line) in stdin.lock().lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading line {n} of stdin"))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                bad.push((n, e.to_string()));
                continue;
            }
        };
        if let Err(e) = record.validate() {
            bad.push((n, format!("invalid {}: {e}", record.kind().as_str())));
            continue;
        }
        match &record {
            Record::BuildRequest(r) => {
                requested.insert(r.build_id.clone());
            }
            Record::BuildResult(_) | Record::Artifact(_) => {
                let id = record
                    .build_id()
                    .expect("results and artifacts name a build");
                if !requested.contains(id) && snapshot.build(id)?.is_none() {
                    bad.push((n, format!("{} for build {id}, which has no build-request in the ledger or on an earlier line", record.kind().as_str())));
                    continue;
                }
            }
            _ => {}
        }
        records.push(record);
    }
    for (n, msg) in &bad {
        eprintln!("line {n}: {msg}");
    }
    if !bad.is_empty() && !args.skip_invalid {
        eprintln!(
            "import refused: {} invalid line(s), nothing written (use --skip-invalid to write the valid lines)",
            bad.len()
        );
        return Ok(ExitCode::from(1));
    }
    let total = records.len();
    let results = writer.append_all(records);
    writer.shutdown();
    let mut written = 0;
    let mut present = 0;
    let mut commits = std::collections::BTreeSet::new();
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        match r {
            Ok(receipt) if receipt.already_present => present += 1,
            Ok(receipt) => {
                written += 1;
                commits.insert(receipt.commit.to_string());
            }
            Err(e) => *failed.entry(e.to_string()).or_default() += 1,
        }
    }
    for (msg, count) in &failed {
        eprintln!("not written ({count}): {msg}");
    }
    let tip = ledger.tip()?.map(|t| t.to_string()).unwrap_or_default();
    if args.json {
        print_json(&serde_json::json!({
            "records": total, "written": written, "already_present": present,
            "failed": failed.values().sum::<usize>(), "skipped_invalid": bad.len(),
            "commits": commits.len(), "tip": tip,
        }))?;
    } else {
        println!(
            "imported {written} of {total} records ({present} already present, {} skipped as invalid) in {} commit(s); tip {tip}",
            bad.len(),
            commits.len()
        );
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn show(ledger: PathBuf, target: String, json: bool) -> anyhow::Result<ExitCode> {
    let l = Ledger::open(&ledger)?;
    let snapshot = l.snapshot()?;
    let looks_like_commit = target.len() == 40 && target.bytes().all(|b| b.is_ascii_hexdigit());
    if looks_like_commit {
        let id = gix::ObjectId::from_hex(target.as_bytes()).context("parsing the commit id")?;
        let at = l
            .snapshot_at(id)
            .with_context(|| format!("{target} is not a commit in this ledger"))?;
        let log = l.log(usize::MAX)?;
        let Some(summary) = log.into_iter().find(|c| c.commit == target) else {
            anyhow::bail!("{target} is not on the ledger's history");
        };
        let changes = at.changed_paths()?;
        if json {
            print_json(
                &serde_json::json!({"commit": summary.commit, "time": summary.time, "summary": summary.summary, "trailers": summary.trailers, "changes": changes}),
            )?;
        } else {
            println!(
                "commit {}\ntime   {}\n\n    {}\n",
                summary.commit, summary.time, summary.summary
            );
            for (k, v) in &summary.trailers {
                println!("    {k}: {v}");
            }
            println!();
            for (change, path) in changes {
                println!("{change} {path}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = target.trim_matches('/');
    match snapshot.lookup(path)? {
        None => {
            eprintln!(
                "{path}: no such path in the ledger at {}",
                snapshot.commit()
            );
            Ok(ExitCode::from(1))
        }
        Some(e) if e.is_tree() => {
            for entry in snapshot.list(path)? {
                let name = String::from_utf8_lossy(&entry.name);
                if json {
                    print_json(
                        &serde_json::json!({"name": name, "dir": entry.is_tree(), "oid": entry.oid.to_string()}),
                    )?;
                } else {
                    println!("{name}{}", if entry.is_tree() { "/" } else { "" });
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(_) => {
            let bytes = snapshot.read(path)?.unwrap_or_default();
            if json {
                let commit = snapshot.commit_of(path)?.map(|c| c.to_string());
                let content = String::from_utf8_lossy(&bytes);
                print_json(
                    &serde_json::json!({"path": path, "ledger_commit": commit, "content": content}),
                )?;
            } else {
                use std::io::Write as _;
                std::io::stdout().write_all(&bytes)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
