//! Job images benchmark (issue 18), each figure against a baseline in the same run:
//!
//! 1. Pulling and unpacking a 200 MB, 5-layer image (gzip layers of many files, half of each
//!    file incompressible) from a Debian `docker-registry` on loopback, by seakeeper
//!    (`ImageSource::prepare`: pull by digest into a fresh image layout, every digest checked,
//!    then unpack into a fresh root). Baseline: `skopeo copy` of the same digest to a `dir:`
//!    directory, then `tar -xzf` of each layer in order into a fresh directory. Alternating
//!    runs, medians. Target: no slower than the baseline (ratio <= 1.0).
//! 2. Starting a job in an image already unpacked: from `Executor::start` to its first command's
//!    first line (the line's time stamp in the job's log), through the whole local executor
//!    (workspace, script, the image's root, bubblewrap with its namespaces, seccomp filter and
//!    log pipes). Baseline: a bare `bwrap` with the same root printing one line. Target: under
//!    50 ms.
//!
//! 3. A job with a warm dependency cache against the same job with none: the job "installs"
//!    its dependencies (3,000 files, 60 MB) by extracting a package archive from its workspace
//!    when `vendor/` is missing, the fastest install there is (no network); with the cache warm
//!    `vendor/` is restored and the install skipped. Job wall time, start to end, medians.
//!    Baseline: the job with no cache. Target: the warm job faster.
//!
//! Targets are reported (PASS/FAIL), never asserted.
//!
//! Run: `cargo bench --bench rootfs -- [--mb N] [--layers N] [--runs N] [--starts N]`. Under
//! `cargo test` it is a smoke run with small sizes (skipped without docker-registry, skopeo or
//! bwrap).

#[path = "../tests/support/registry.rs"]
mod registry;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use seakeeper::executor::Executor as _;
use seakeeper::executor::local::{LocalConfig, LocalExecutor, Prepare, Rootfs};
use seakeeper::model::{JobSpec, JobState, Trust};
use seakeeper::registry::copy::{Location, copy};
use seakeeper::registry::distribution::Registry;
use seakeeper::registry::pull::ImageSource;
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

/// An image of `layers` layers of about `mb` MB of files each, on the busybox base when there
/// is one (so jobs can run in it).
fn build_image(
    dir: &Path,
    store: &OciLayout,
    layers: usize,
    mb: usize,
) -> seakeeper::model::Digest {
    let mut base = None;
    if Path::new("/bin/busybox").is_file() {
        base = Some(
            assemble(
                store,
                &ImageSpec {
                    files: BTreeMap::from([("bin/sh".to_owned(), PathBuf::from("/bin/busybox"))]),
                    env: BTreeMap::from([("PATH".to_owned(), "/bin".to_owned())]),
                    ..ImageSpec::default()
                },
            )
            .unwrap()
            .digest,
        );
    }
    let mut x: u64 = 0x2545f4914f6cdd1d;
    const FILE: usize = 200 << 10;
    for l in 0..layers {
        let src = dir.join(format!("layer{l}"));
        let mut files = BTreeMap::new();
        for f in 0..(mb << 20) / FILE {
            let path = src.join(format!("usr/share/bench{l}/d{}/f{f}.dat", f % 16));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut data = vec![0u8; FILE];
            let (random, text) = data.split_at_mut(FILE / 2);
            for chunk in random.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            for (i, b) in text.iter_mut().enumerate() {
                *b = b"the quick brown fox jumps over the lazy dog\n"[i % 44];
            }
            std::fs::write(&path, &data).unwrap();
            files.insert(
                path.strip_prefix(&src)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                path,
            );
        }
        base = Some(
            assemble(
                store,
                &ImageSpec {
                    files,
                    base: base.clone(),
                    ..ImageSpec::default()
                },
            )
            .unwrap()
            .digest,
        );
        std::fs::remove_dir_all(&src).unwrap();
    }
    base.unwrap()
}

/// The baseline: skopeo to a directory, then tar -x of each layer in order.
fn skopeo_and_tar(host: &str, repo: &str, digest: &str, work: &Path) -> Duration {
    let started = Instant::now();
    let out = work.join("skopeo");
    let st = Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{host}/{repo}@{digest}"))
        .arg(format!("dir:{}", out.display()))
        .status()
        .unwrap();
    assert!(st.success(), "skopeo copy failed");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let root = work.join("tar-root");
    std::fs::create_dir_all(&root).unwrap();
    for l in manifest["layers"].as_array().unwrap() {
        let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(out.join(hex))
            .arg("-C")
            .arg(&root)
            .status()
            .unwrap();
        assert!(st.success(), "tar -x failed");
    }
    started.elapsed()
}

fn seakeeper_prepare(image: &str, work: &Path) -> (Duration, PathBuf) {
    let started = Instant::now();
    let source = ImageSource::under(work).unwrap();
    let unpacked = source.prepare(image, true).unwrap();
    (started.elapsed(), unpacked.root)
}

/// Bare bubblewrap in `root`, spawn to first line.
fn bare_bwrap(root: &Path) -> Duration {
    let started = Instant::now();
    let mut child = Command::new("bwrap")
        .args([
            "--unshare-all",
            "--unshare-user",
            "--die-with-parent",
            "--ro-bind",
        ])
        .arg(root)
        .args([
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "/bin/sh",
            "-c",
            "echo first",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let took = started.elapsed();
    assert_eq!(line.trim(), "first");
    child.wait().unwrap();
    took
}

/// A job through the local executor in the unpacked image: start to its first line.
fn executor_start(exec: &LocalExecutor, image: &str, n: usize) -> Duration {
    let spec = JobSpec {
        build_id: format!("bench-{n}").parse().unwrap(),
        job: "first".into(),
        pipeline: "check".into(),
        project: "bench".parse().unwrap(),
        change: None,
        source: String::new(),
        commit: "0".repeat(40).parse().unwrap(),
        image: image.to_owned(),
        commands: vec!["echo first".into()],
        env: BTreeMap::new(),
        timeout_seconds: 60,
        cpu: None,
        memory: None,
        services: BTreeMap::new(),
        secrets: Vec::new(),
        network: false,
        outputs: Vec::new(),
        trust: Trust::Untrusted,
        required: Vec::new(),
        caches: Vec::new(),
        inputs: Vec::new(),
    };
    let key = spec.key();
    let started = SystemTime::now();
    exec.start(&spec).unwrap();
    let state = exec.wait(&key, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(state, JobState::Succeeded);
    let mut first = None;
    exec.logs(&key, false, &mut |l| {
        if first.is_none() && l.text == "first" {
            first = Some(l.time.clone());
        }
    })
    .unwrap();
    let at: jiff::Timestamp = first.expect("the job printed its line").parse().unwrap();
    let at = SystemTime::from(at);
    at.duration_since(started).unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let layers = arg(&args, "--layers", 5);
    let mb = arg(&args, "--mb", if bench { 40 } else { 1 });
    let runs = arg(&args, "--runs", if bench { 3 } else { 1 });
    let starts = arg(&args, "--starts", if bench { 30 } else { 3 });
    if !have("skopeo") || !have("bwrap") {
        eprintln!("skipping: skopeo or bwrap is not installed");
        return;
    }
    let Some(reg) = registry::DockerRegistry::start() else {
        eprintln!("skipping: docker-registry is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = OciLayout::open_or_init(&dir.path().join("build")).unwrap();
    let digest = build_image(dir.path(), &store, layers, mb);
    let dst = Location::Registry(
        Arc::new(Registry::new(&format!("http://{}", reg.host), None).unwrap()),
        "bench/image".to_owned(),
    );
    copy(&Location::Layout(store.clone()), &dst, &digest, None, 4).unwrap();
    let image = format!("{}/bench/image@{digest}", reg.host);

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut root = PathBuf::new();
    for r in 0..runs {
        let work = dir.path().join(format!("run{r}"));
        std::fs::create_dir_all(&work).unwrap();
        theirs.push(skopeo_and_tar(
            &reg.host,
            "bench/image",
            digest.as_str(),
            &work,
        ));
        let (took, r) = seakeeper_prepare(&image, &work.join("state"));
        ours.push(took);
        root = r;
        if r_is_last(runs, &work) {
            continue;
        }
        let _ = std::fs::remove_dir_all(work.join("skopeo"));
        let _ = std::fs::remove_dir_all(work.join("tar-root"));
    }
    let (o, t) = (median(ours), median(theirs));
    let ratio = o.as_secs_f64() / t.as_secs_f64();
    println!(
        "pull + unpack of {layers} layers x {mb} MB (gzip, ~{} files), {runs} runs (median)",
        layers * ((mb << 20) / (200 << 10))
    );
    println!("  seakeeper (pull by digest + unpack)   {:>9.1} ms", ms(o));
    println!("  skopeo copy dir: + tar -xzf per layer {:>9.1} ms", ms(t));
    println!(
        "  ratio {ratio:.2}x (target <= 1.0: {})",
        if ratio <= 1.0 { "PASS" } else { "FAIL" }
    );

    caches_bench(
        dir.path(),
        runs.max(if bench { 5 } else { 1 }),
        if bench { 60 } else { 2 },
    );
    if !Path::new("/bin/busybox").is_file() {
        eprintln!("skipping the start benchmark: no /bin/busybox for a shell in the image");
        return;
    }
    let bare: Vec<Duration> = (0..starts).map(|_| bare_bwrap(&root)).collect();
    let state = dir.path().join("exec");
    let mut config = LocalConfig::new(&state);
    config.max_concurrent = 1;
    let prepare: Prepare =
        Arc::new(|_, ws| std::fs::write(ws.join("README"), "bench\n").map_err(|e| e.to_string()));
    let unpacked = root.clone();
    let exec = LocalExecutor::new(config, prepare)
        .unwrap()
        .with_images(Arc::new(move |_: &str, _| {
            Ok(Rootfs {
                root: unpacked.clone(),
                env: vec![("PATH".into(), "/bin".into())],
                working_dir: String::new(),
                uid: 65532,
                gid: 65532,
                entrypoint: Vec::new(),
                cmd: Vec::new(),
                ports: Vec::new(),
            })
        }));
    let job: Vec<Duration> = (0..starts)
        .map(|n| executor_start(&exec, &image, n))
        .collect();
    let (b, j) = (median(bare.clone()), median(job.clone()));
    let p90 = |mut v: Vec<Duration>| {
        v.sort();
        v[(v.len() * 9 / 10).min(v.len() - 1)]
    };
    println!("\nstart to the first line in an unpacked image, {starts} starts");
    println!(
        "  seakeeper local executor   median {:>6.1} ms  p90 {:>6.1} ms",
        ms(j),
        ms(p90(job))
    );
    println!(
        "  bare bwrap (baseline)      median {:>6.1} ms  p90 {:>6.1} ms",
        ms(b),
        ms(p90(bare))
    );
    println!(
        "  ratio {:.2}x; target under 50 ms: {}",
        j.as_secs_f64() / b.as_secs_f64(),
        if ms(j) < 50.0 { "PASS" } else { "FAIL" }
    );
}

/// The last run's root is kept for the start benchmark.
fn r_is_last(runs: usize, work: &Path) -> bool {
    work.ends_with(format!("run{}", runs - 1))
}

/// Section 3: a job with a warm dependency cache against the same job with none.
fn caches_bench(dir: &Path, runs: usize, mb: usize) {
    // The "package": `mb` MB in 3,000 files, as a gzip archive the job extracts.
    let pkg = dir.join("pkg");
    let files = 3000;
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for f in 0..files {
        let p = pkg.join(format!("lib{}/f{f}.php", f % 50));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut data = vec![b'a'; (mb << 20) / files];
        for chunk in data.chunks_mut(8).step_by(2) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(&p, data).unwrap();
    }
    let archive = dir.join("deps.tar.gz");
    assert!(
        Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(&pkg)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let prepare: Prepare = Arc::new(move |_, ws| {
        std::fs::copy(&archive, ws.join("deps.tar.gz")).map_err(|e| e.to_string())?;
        std::fs::write(ws.join("composer.lock"), "a/b 1.0\n").map_err(|e| e.to_string())?;
        Ok(())
    });
    let state = dir.join("caches-bench");
    let mut config = LocalConfig::new(&state);
    config.max_concurrent = 1;
    let exec = LocalExecutor::new(config, prepare).unwrap();
    let job = |n: usize, cached: bool| -> Duration {
        let spec = JobSpec {
            build_id: format!("cache-{n}-{cached}").parse().unwrap(),
            job: "deps".into(),
            pipeline: "check".into(),
            project: "shop".parse().unwrap(),
            change: None,
            source: String::new(),
            commit: "0".repeat(40).parse().unwrap(),
            image: "registry.example.org/php@sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
            commands: vec![
                "if [ ! -d vendor ]; then mkdir vendor && tar -xzf deps.tar.gz -C vendor; fi".into(),
                "test $(find vendor -type f | wc -l) -eq 3000".into(),
            ],
            env: BTreeMap::new(),
            timeout_seconds: 600,
            cpu: None,
            memory: None,
            services: BTreeMap::new(),
            secrets: Vec::new(),
            network: false,
            outputs: Vec::new(),
            trust: Trust::Untrusted,
            required: Vec::new(),
            caches: if cached {
                vec![seakeeper::model::CacheSpec {
                    path: "vendor".into(),
                    key: vec!["composer.lock".into()],
                }]
            } else {
                Vec::new()
            },
            inputs: Vec::new(),
        };
        let started = Instant::now();
        exec.start(&spec).unwrap();
        let state = exec
            .wait(&spec.key(), Some(Duration::from_secs(600)))
            .unwrap();
        assert_eq!(state, JobState::Succeeded);
        started.elapsed()
    };
    // The first cached run fills the cache (and is not counted).
    job(usize::MAX, true);
    let (mut warm, mut none) = (Vec::new(), Vec::new());
    for n in 0..runs {
        none.push(job(n, false));
        warm.push(job(n, true));
    }
    let (w, c) = (median(warm), median(none));
    println!(
        "\na job installing {mb} MB in {files} files from a package archive, {runs} runs (median)"
    );
    println!(
        "  warm cache (restore, install skipped, save skipped) {:>8.1} ms",
        ms(w)
    );
    println!(
        "  no cache (install every time; baseline)           {:>8.1} ms",
        ms(c)
    );
    println!(
        "  ratio {:.2}x (target < 1.0: {})",
        w.as_secs_f64() / c.as_secs_f64(),
        if w < c { "PASS" } else { "FAIL" }
    );
}
