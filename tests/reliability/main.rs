//! The reliability harness of issue 14: drives the whole daemon, with the real binary, against
//! the Gerrit stand-in, real git, GnuPG and OCI layouts, while things go wrong on purpose:
//!
//! - `kill -9` of the daemon at random moments while changes flow (Gerrit meanwhile answers
//!   500s and drops its event streams), then a restart; every change must end up reviewed once
//!   per build, every reviewed build with a request and a result in the ledger, the ledger
//!   verifying;
//! - forged, rewound and truncated ledgers: none may be adopted or written onto;
//! - promotions of a wrong image (forged attestation, another image's digest, a digest the
//!   source does not run) and copies from registries that lie about digests or reset
//!   connections: none may be recorded;
//! - a registry that hangs mid-blob: how long the daemon takes meanwhile to take in a new
//!   patchset (it must keep answering).
//!
//! It prints one table. Short form under `cargo test` (a few kills); the long form is
//! `scripts/reliability` (`SEAKEEPER_RELIABILITY_KILLS`, default 100 there). The parsers'
//! fuzzing is `cargo bench --bench fuzz_inputs` and `--bench fuzz_config`.

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use seakeeper::model::Digest;
use support::registry::{Misbehaviour, StallingRegistry};
use support::site::{
    Daemon, Site, build_ids, envelope, git, image_in_layout, image_in_testing, pipeline,
    promoting_from, record_build, wait_for,
};
use support::{ok, output, seakeeper, stderr};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn status(site: &Site) -> String {
    ok(seakeeper()
        .args(["status", "--settings"])
        .arg(&site.settings))
}

#[derive(Default)]
struct Figures {
    kills: usize,
    changes: usize,
    merges: usize,
    freezes: usize,
    merged_unchecked: usize,
    reviews: usize,
    lost: usize,
    duplicated: usize,
    forged_tried: usize,
    forged_adopted: usize,
    wrong_tried: usize,
    wrong_promoted: usize,
    stall: Duration,
    stall_gerrit: Duration,
}

fn kills_wanted() -> usize {
    std::env::var("SEAKEEPER_RELIABILITY_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// kill -9 at random moments while changes arrive, branches move (post-merge builds) and
/// freezes come and go in the config repo, and Gerrit misbehaves.
fn kill_loop(f: &mut Figures, kills: usize, seed: u64) {
    let site = Site::new("", "");
    site.reconcile();
    let mut rng = Rng(seed | 1);
    let mut daemon = Daemon::start(&site);
    let mut frozen = false;
    for k in 0..kills {
        // Each change starts from the branch as it is (not on top of the last change), so a
        // push to the branch closes only what it really merges. Read from the stand-in's
        // repository on disk: the faults it is told to answer with are for the daemon.
        let w = site.clone("acme/api");
        let bare = site.g.repo("acme/api");
        git(
            &w,
            &[
                "fetch",
                "-q",
                &bare.display().to_string(),
                "+refs/heads/main:refs/remotes/origin/main",
            ],
        );
        git(&w, &["reset", "-q", "--hard", "origin/main"]);
        site.upload(
            "acme/api",
            &format!("I{:040x}", 0x7000 + k),
            &[
                (".pipeline/config.yaml", &pipeline("sleep 0.3")),
                ("msg.txt", &format!("change {k}\n")),
            ],
            false,
        );
        // A third of the time the branch moves too (a post-merge build), and a quarter of the
        // time a freeze is merged into, or lifted from, the config repo.
        if rng.below(3) == 0 {
            site.merge("acme/api");
            f.merges += 1;
        }
        if rng.below(4) == 0 {
            if frozen {
                std::fs::remove_file(site.config.join("freezes/hold.yaml")).unwrap();
                site.commit_config("Lift the freeze");
            } else {
                site.write_config(
                    "freezes/hold.yaml",
                    "scope: [\"promote:staging\"]\nreason: Held by the harness.\n",
                );
                site.commit_config("Freeze staging");
            }
            frozen = !frozen;
            f.freezes += 1;
        }
        if rng.below(3) == 0 {
            site.g.fail_next(2);
        }
        if rng.below(4) == 0 {
            site.g.drop_streams();
        }
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        let _ = daemon.0.kill();
        let _ = daemon.0.wait();
        f.kills += 1;
        daemon = Daemon::start(&site);
    }
    f.changes += kills;
    // A change whose commit a push made part of the branch merged: Gerrit (and the stand-in)
    // closes it, and nothing is owed to it. Nothing else merges here (the daemon never submits).
    let merged_by_push = |c: u32| site.g.change(c).status == "MERGED";
    let every_change_reviewed =
        || (1..=kills as u32).all(|c| !site.reviews(c).is_empty() || merged_by_push(c));
    let tip = git(&site.g.repo("acme/api"), &["rev-parse", "refs/heads/main"]);
    let tip_build = seakeeper::reconcile::post_merge_build_id(
        &"acme/api".parse().unwrap(),
        &"refs/heads/main".parse().unwrap(),
        &tip.parse().unwrap(),
        None,
    );
    // Requested and finished.
    let tip_built = || {
        site.ledger_log()
            .matches(&format!("Build-Id: {tip_build}"))
            .count()
            >= 2
    };
    let freeze_state = || {
        let st = status(&site);
        st.contains("hold") == frozen
    };
    // Every build the ledger holds a request for also holds its result (a check of a change
    // closed by a push is cancelled and recorded so, never left behind).
    let unfinished = || {
        let mut per_build: std::collections::BTreeMap<String, usize> = Default::default();
        for l in site.ledger_log().lines() {
            if let Some(id) = l.trim().strip_prefix("Build-Id: ") {
                *per_build.entry(id.to_owned()).or_default() += 1;
            }
        }
        per_build
            .into_iter()
            .filter(|(_, n)| *n < 2)
            .map(|(id, _)| id)
            .collect::<Vec<_>>()
    };
    let merged = f.merges > 0;
    let deadline = Instant::now() + Duration::from_secs(60 + 3 * kills as u64);
    while !(every_change_reviewed()
        && (!merged || tip_built())
        && freeze_state()
        && unfinished().is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let what is in flight settle, then stop cleanly.
    std::thread::sleep(Duration::from_secs(2));
    let out = daemon.term();
    assert!(
        out.status.success() || out.status.code().is_none(),
        "{}",
        stderr(&out)
    );
    let daemon_said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = site.ledger_log();
    for c in 1..=kills as u32 {
        let reviews = site.reviews(c);
        // A change whose commit was pushed straight to the branch merged before it could be
        // checked (Gerrit closes such a change): nothing is owed to it.
        if reviews.is_empty() && merged_by_push(c) {
            f.merged_unchecked += 1;
            continue;
        }
        if reviews.is_empty() {
            eprintln!(
                "change {c} was never reviewed; status:\n{}\nthe last daemon said:\n{daemon_said}",
                status(&site),
            );
            f.lost += 1;
            continue;
        }
        f.reviews += reviews.len();
        let mut seen = std::collections::BTreeSet::new();
        for r in &reviews {
            for id in build_ids(r) {
                if !seen.insert(id.clone()) {
                    f.duplicated += 1;
                }
                // Reviewed means requested and finished in the ledger.
                let records = log.matches(&format!("Build-Id: {id}")).count();
                if records < 2 {
                    f.lost += 1;
                }
            }
        }
    }
    // The branch's last tip was built after merging (request and result), each post-merge
    // build recorded once (a request and a result, never more), and the last freeze state
    // is what the ledger and status say.
    if merged && !tip_built() {
        eprintln!("the branch's tip {tip} has no post-merge build ({tip_build})");
        f.lost += 1;
    }
    let mut per_build: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in log.lines() {
        if let Some(id) = l.trim().strip_prefix("Build-Id: ")
            && id.starts_with("post-merge")
        {
            *per_build.entry(id).or_default() += 1;
        }
    }
    f.duplicated += per_build.values().filter(|n| **n > 2).count();
    for id in unfinished() {
        eprintln!("build {id} was requested and has no result");
        f.lost += 1;
    }
    if !freeze_state() {
        eprintln!("the freeze should be {frozen}:\n{}", status(&site));
        f.lost += 1;
    }
    site.verify_ledger();
}

/// Ledgers that must never be adopted or written onto.
fn forged_ledgers(f: &mut Figures) {
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = remote_dir.path().join("ledger.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "-q", "--bare"]);
    let site = Site::new("", "");
    let s = std::fs::read_to_string(site.config.join("seakeeper.yaml")).unwrap();
    site.write_config(
        "seakeeper.yaml",
        &format!("{s}ledger:\n  remote: {}\n", remote.display()),
    );
    site.commit_config("Replicate the ledger");
    site.reconcile();
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000901",
        &[
            (".pipeline/config.yaml", &pipeline("true")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    site.reconcile();
    let good = git(&remote, &["rev-parse", "refs/heads/main"]);
    let older = git(&remote, &["rev-parse", "refs/heads/main~1"]);
    // 1. A whole ledger signed by an attacker, over the remote; a fresh server starts.
    let (attacker, _, _) = site.w.another_key("attacker");
    let forged = site.w.path("forged");
    ok(seakeeper()
        .args(["ledger", "init"])
        .arg(&forged)
        .arg("--key")
        .arg(&attacker));
    let imported = site
        .w
        .import(&forged, &attacker, &support::sample_jsonl(1, 8), &[]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    git(
        &forged,
        &[
            "push",
            "-q",
            "--force",
            &remote.display().to_string(),
            "refs/heads/main:refs/heads/main",
        ],
    );
    let saved = site.w.path("saved-state");
    std::fs::rename(site.state(), &saved).unwrap();
    f.forged_tried += 1;
    let out = output(&mut site.reconcile_cmd());
    if site.ledger().exists() {
        f.forged_adopted += 1;
    }
    assert!(
        stderr(&out).contains("refusing the ledger"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(site.state());
    std::fs::rename(&saved, site.state()).unwrap();
    // 2. An attacker's commit on top of the real ledger (it allows itself in LEDGER).
    git(&remote, &["update-ref", "refs/heads/main", &good]);
    let copy = site.w.path("copy.git");
    git(
        &site.w.path(""),
        &[
            "clone",
            "-q",
            "--bare",
            &remote.display().to_string(),
            &copy.display().to_string(),
        ],
    );
    let tree = git(&copy, &["rev-parse", "refs/heads/main^{tree}"]);
    let evil = git(
        &copy,
        &[
            "commit-tree",
            &tree,
            "-p",
            &good,
            "-m",
            "Evil\n\nLedger-Sequence: 999",
        ],
    );
    git(&copy, &["update-ref", "refs/heads/main", &evil]);
    f.forged_tried += 1;
    let pulled = output(
        seakeeper()
            .args(["ledger", "pull"])
            .arg(site.w.path("puller"))
            .arg(&copy)
            .arg("--cert")
            .arg(&site.w.cert),
    );
    if pulled.status.success() {
        f.forged_adopted += 1;
    }
    assert!(
        stderr(&pulled).contains("is not signed"),
        "{}",
        stderr(&pulled)
    );
    // 3. The remote rewound: replication must not push over it, and a pull into a copy that
    // had the newer head must refuse it.
    git(&remote, &["update-ref", "refs/heads/main", &older]);
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000902",
        &[("msg.txt", "again\n")],
        false,
    );
    let _ = output(&mut site.reconcile_cmd());
    f.forged_tried += 1;
    if git(&remote, &["rev-parse", "refs/heads/main"]) != older {
        f.forged_adopted += 1;
    }
    assert!(
        status(&site).contains("REFUSED: the remote was rewound"),
        "{}",
        status(&site)
    );
    // 4. The local ledger truncated under the server: nothing may be written onto it.
    let head = git(&site.ledger(), &["rev-parse", "refs/heads/main"]);
    let back = git(&site.ledger(), &["rev-parse", "refs/heads/main~2"]);
    git(&site.ledger(), &["update-ref", "refs/heads/main", &back]);
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000903",
        &[("msg.txt", "once more\n")],
        false,
    );
    let _ = output(&mut site.reconcile_cmd());
    f.forged_tried += 1;
    if git(&site.ledger(), &["rev-parse", "refs/heads/main"]) != back {
        f.forged_adopted += 1;
    }
    assert!(
        status(&site).contains("the ledger was rolled back"),
        "{}",
        status(&site)
    );
    git(&site.ledger(), &["update-ref", "refs/heads/main", &head]);
}

/// Promotions of the wrong bytes, and registries that lie or reset: nothing recorded.
fn wrong_images(f: &mut Figures) {
    // Promotion records (refusals are recorded too, and name the environment as well).
    let promotions_in = |site: &Site| {
        site.ledger_log()
            .lines()
            .filter(|l| l.starts_with("Promote ") && l.ends_with(" to staging"))
            .count()
    };
    // Forged attestation, another image's name, a digest the source does not run.
    let site = Site::new("", "");
    site.reconcile();
    let digest = image_in_testing(&site);
    let (attacker, _, _) = site.w.another_key("attacker");
    record_build(&site, &digest, envelope(&attacker, &digest));
    let nowhere = Digest::of(b"never pushed anywhere");
    site.write_config(
        "promotions/staging.yaml",
        &format!("images:\n  api: {digest}\n"),
    );
    site.commit_config("Promote on a forged attestation");
    let _ = output(&mut site.reconcile_cmd());
    f.wrong_tried += 1;
    assert!(
        status(&site).contains("refused: the ledger holds no verified trusted build attestation"),
        "{}",
        status(&site)
    );
    site.write_config(
        "projects/acme/web.yaml",
        "pipelines: [check, post-merge]\nimages: [web]\n",
    );
    site.write_config(
        "promotions/staging.yaml",
        &format!("images:\n  web: {digest}\n  api: {nowhere}\n"),
    );
    site.commit_config("Promote api's digest as web, and one nobody built");
    let _ = output(&mut site.reconcile_cmd());
    f.wrong_tried += 2;
    let st = status(&site);
    assert!(
        st.contains(&format!("staging web@{digest} refused")),
        "{st}"
    );
    assert!(
        st.contains(&format!("staging api@{nowhere} refused")),
        "{st}"
    );
    f.wrong_promoted += promotions_in(&site);
    // Registries that lie about the digest, or reset the connection mid-blob.
    for mode in [Misbehaviour::Lie, Misbehaviour::Reset] {
        let dirs = tempfile::tempdir().unwrap();
        let source = dirs.path().join("testing-layout");
        let digest = image_in_layout(&dirs.path().join("root"), &source, &"x\n".repeat(5000));
        let registry = StallingRegistry::start_with(source, mode);
        let site = promoting_from(
            &registry.host,
            &dirs.path().join("staging"),
            &digest,
            "Promote from a misbehaving registry",
        );
        let _ = output(&mut site.reconcile_cmd());
        f.wrong_tried += 1;
        assert!(
            status(&site).contains(&format!("staging api@{digest} failed")),
            "{mode:?}: {}",
            status(&site)
        );
        f.wrong_promoted += promotions_in(&site);
    }
}

/// How long the daemon takes to take in a patchset while a registry hangs mid-blob.
fn stall(f: &mut Figures) {
    let dirs = tempfile::tempdir().unwrap();
    let source = dirs.path().join("testing-layout");
    let digest = image_in_layout(&dirs.path().join("root"), &source, &"y\n".repeat(5000));
    let registry = StallingRegistry::start(source);
    let site = promoting_from(
        &registry.host,
        &dirs.path().join("staging"),
        &digest,
        "Promote from a registry that hangs",
    );
    let daemon = Daemon::start(&site);
    wait_for("the copy to hang", Duration::from_secs(30), || {
        registry.stalled.load(std::sync::atomic::Ordering::SeqCst) > 0
    });
    for n in 0..3u32 {
        let asked = Instant::now();
        site.upload(
            "acme/api",
            &format!("I{:040x}", 0x9000 + n),
            &[
                (".pipeline/config.yaml", &pipeline("true")),
                ("msg.txt", &format!("{n}\n")),
            ],
            false,
        );
        let status =
            || std::fs::read_to_string(site.state().join("status.json")).unwrap_or_default();
        let change = format!("\"what\": \"{},1\"", n + 1);
        let reviewed = || !site.reviews(n + 1).is_empty();
        wait_for(
            "the patchset to be taken in",
            Duration::from_secs(30),
            || status().contains(&change) || reviewed(),
        );
        f.stall = f.stall.max(asked.elapsed());
    }
    // Gerrit stops answering too: a config change must still show in `status` promptly.
    site.g.delay_next(10_000, Duration::from_secs(60));
    for n in 0..3u32 {
        site.write_config(
            "freezes/hold.yaml",
            &format!("scope: [all]\nreason: Test {n}.\n"),
        );
        let commit = site.commit_config(&format!("Freeze {n}"));
        let asked = Instant::now();
        wait_for("the config in status", Duration::from_secs(30), || {
            status(&site).contains(&format!("config: {commit}"))
        });
        f.stall_gerrit = f.stall_gerrit.max(asked.elapsed());
    }
    let _ = daemon.term();
}

#[test]
fn reliability_under_kills_forgeries_lies_and_stalls() {
    let kills = kills_wanted();
    let started = Instant::now();
    let mut f = Figures::default();
    kill_loop(&mut f, kills, 0x5eed_0014);
    forged_ledgers(&mut f);
    wrong_images(&mut f);
    stall(&mut f);
    println!();
    println!("| reliability (issue 14) | figure | must be |");
    println!("|---|---|---|");
    println!("| daemon kill -9 survived | {} | |", f.kills);
    println!(
        "| changes uploaded / reviews posted | {} / {} | |",
        f.changes, f.reviews
    );
    println!(
        "| branch moves (post-merge) / freezes merged or lifted, during the kills | {} / {} | |",
        f.merges, f.freezes
    );
    println!(
        "| changes merged by a push before their check (closed, not owed a review) | {} | |",
        f.merged_unchecked
    );
    println!("| changes or builds lost | {} | 0 |", f.lost);
    println!("| reviews or records duplicated | {} | 0 |", f.duplicated);
    println!(
        "| forged, rewound or truncated ledgers adopted | {} of {} | 0 |",
        f.forged_adopted, f.forged_tried
    );
    println!(
        "| wrong images promoted | {} of {} attempts | 0 |",
        f.wrong_promoted, f.wrong_tried
    );
    println!(
        "| longest wait for a patchset while a registry hangs | {:.2} s | < 2 s |",
        f.stall.as_secs_f64()
    );
    println!(
        "| longest wait for `status` to show a config change while Gerrit hangs | {:.2} s | < 2 s |",
        f.stall_gerrit.as_secs_f64()
    );
    println!("| wall time | {:.0} s | |", started.elapsed().as_secs_f64());
    assert_eq!(f.lost, 0, "lost");
    assert_eq!(f.duplicated, 0, "duplicated");
    assert_eq!(f.forged_adopted, 0, "forged ledgers adopted");
    assert_eq!(f.wrong_promoted, 0, "wrong images promoted");
    // Generous bounds (2 cores, everything else running): the table has the figures.
    assert!(f.stall < Duration::from_secs(10), "{:?}", f.stall);
    assert!(
        f.stall_gerrit < Duration::from_secs(10),
        "{:?}",
        f.stall_gerrit
    );
}
