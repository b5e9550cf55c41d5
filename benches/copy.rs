//! Copy benchmark: the same multi-layer image (5 layers of 20 MB) copied between the same two
//! Debian docker-registry instances by seakeeper and by `skopeo copy --all`, alternating, into
//! fresh repositories each time (skopeo's blob-info cache cleared between runs); and a no-op
//! re-promotion (the image is already there). Targets: seakeeper at most 0.7x skopeo's wall
//! time; a no-op re-promotion under 50 ms.
//!
//! Run: `cargo bench --bench copy -- [--layers N] [--mb N] [--runs N]`. Under `cargo test` it
//! is a smoke test with small sizes (skipped when docker-registry or skopeo is missing).

#[path = "../tests/support/registry.rs"]
mod registry;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seakeeper::registry::copy::{Location, copy};
use seakeeper::registry::distribution::Registry;
use seakeeper::registry::{ImageSpec, OciLayout, assemble};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let layers = arg(&args, "--layers", 5);
    let mb = arg(&args, "--mb", if bench { 20 } else { 1 });
    let runs = arg(&args, "--runs", if bench { 5 } else { 1 });
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skipping: skopeo is not installed");
        return;
    }
    let (Some(a), Some(b)) = (
        registry::DockerRegistry::start(),
        registry::DockerRegistry::start(),
    ) else {
        eprintln!("skipping: docker-registry is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = OciLayout::open_or_init(&dir.path().join("store")).unwrap();
    // An image of `layers` layers of `mb` MB of incompressible data each.
    let mut base = None;
    let mut x: u64 = 0x2545f4914f6cdd1d;
    for i in 0..layers {
        let src = dir.path().join(format!("l{i}"));
        std::fs::create_dir_all(&src).unwrap();
        let mut data = vec![0u8; mb << 20];
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(src.join(format!("layer{i}.bin")), &data).unwrap();
        let d = assemble(
            &store,
            &ImageSpec {
                files: seakeeper::registry::assemble::files_under(&src).unwrap(),
                base: base.clone(),
                ..ImageSpec::default()
            },
        )
        .unwrap();
        base = Some(d.digest);
    }
    let digest = base.unwrap();
    let ra = Arc::new(Registry::new(&format!("http://{}", a.host), None).unwrap());
    let rb = Arc::new(Registry::new(&format!("http://{}", b.host), None).unwrap());
    copy(
        &Location::Layout(store.clone()),
        &Location::Registry(ra.clone(), "src/app".into()),
        &digest,
        Some("1"),
        4,
    )
    .unwrap();
    let cache = dir.path().join("blob-info-cache");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 0..runs {
        let t = Instant::now();
        copy(
            &Location::Registry(ra.clone(), "src/app".into()),
            &Location::Registry(rb.clone(), format!("ours{run}/app")),
            &digest,
            Some("1"),
            8,
        )
        .unwrap();
        ours.push(t.elapsed());
        // skopeo's blob-info cache (per user; root's lives under /var/lib/containers) would let
        // it mount blobs from earlier runs' repositories.
        let _ = std::fs::remove_dir_all(&cache);
        let _ = std::fs::remove_file("/var/lib/containers/cache/blob-info-cache-v1.boltdb");
        let t = Instant::now();
        let out = Command::new("skopeo")
            .args([
                "copy",
                "--all",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--src-no-creds",
                "--dest-no-creds",
            ])
            .arg(format!("docker://{}/src/app@{digest}", a.host))
            .arg(format!("docker://{}/skopeo{run}/app:1", b.host))
            .env("XDG_CACHE_HOME", &cache)
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        theirs.push(t.elapsed());
    }
    // A no-op re-promotion: everything is already at the target.
    let mut noop = Vec::new();
    for _ in 0..runs.max(5) {
        let t = Instant::now();
        copy(
            &Location::Registry(ra.clone(), "src/app".into()),
            &Location::Registry(rb.clone(), "ours0/app".into()),
            &digest,
            Some("1"),
            4,
        )
        .unwrap();
        noop.push(t.elapsed());
    }
    let (o, s, n) = (median(ours), median(theirs), median(noop));
    println!(
        "copy of {layers} layers x {mb} MB between two docker-registry instances, {runs} runs (median)\n"
    );
    println!(
        "seakeeper: {:.0} ms   skopeo copy --all: {:.0} ms   seakeeper/skopeo: {:.2}x (target <= 0.7x)",
        o.as_secs_f64() * 1000.0,
        s.as_secs_f64() * 1000.0,
        o.as_secs_f64() / s.as_secs_f64()
    );
    println!(
        "no-op re-promotion: {:.1} ms (target < 50 ms)",
        n.as_secs_f64() * 1000.0
    );
}
