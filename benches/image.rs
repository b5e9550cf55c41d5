//! Image assembly benchmark: 100 MB of job outputs assembled into a deterministic OCI image
//! (tar, gzip level 6, two SHA-256 passes, the layout written and fsynced) against
//! `tar -c | gzip -6` of the same files in the same run. Target: no slower than the baseline.
//!
//! Run: `cargo bench --bench image -- [--mb N]`. Under `cargo test` it is a smoke test.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seakeeper::registry::{ImageSpec, OciLayout, assemble};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let mb: usize = args
        .iter()
        .position(|a| a == "--mb")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 100 } else { 4 });
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("out");
    std::fs::create_dir_all(&src).unwrap();
    // Build-output-like data: text that compresses about 3:1.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for f in 0..mb {
        let mut data = Vec::with_capacity(1 << 20);
        while data.len() < 1 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let word = [
                "fn ", "let ", "mut ", "x", "y", "= ", "42", "; ", "\n", "impl ",
            ][(x % 10) as usize];
            data.extend_from_slice(word.as_bytes());
            data.extend_from_slice(format!("{:x}", x % 4096).as_bytes());
        }
        std::fs::write(src.join(format!("part-{f:03}.bin")), &data).unwrap();
    }
    let runs = if bench { 3 } else { 1 };
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for i in 0..runs {
        let store = OciLayout::open_or_init(&dir.path().join(format!("store-{i}"))).unwrap();
        let spec = ImageSpec {
            files: seakeeper::registry::assemble::files_under(&src).unwrap(),
            prefix: "srv".into(),
            ..ImageSpec::default()
        };
        let t = Instant::now();
        let d = assemble(&store, &spec).unwrap();
        ours.push(t.elapsed());
        assert!(d.size > 0);
        let t = Instant::now();
        let mut tar = Command::new("tar")
            .arg("-c")
            .arg("-C")
            .arg(&src)
            .arg(".")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Command::new("gzip")
            .arg("-6")
            .stdin(tar.stdout.take().unwrap())
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        assert!(out.status.success() && tar.wait().unwrap().success());
        base.push(t.elapsed());
    }
    let (o, b) = (median(ours), median(base));
    println!("image assembly of {mb} MB of outputs ({runs} runs, median)\n");
    println!(
        "seakeeper assemble: {:.0} ms   tar | gzip -6: {:.0} ms   ratio (baseline / seakeeper): {:.2}x",
        o.as_secs_f64() * 1000.0,
        b.as_secs_f64() * 1000.0,
        b.as_secs_f64() / o.as_secs_f64()
    );
    println!("target: no slower than tar | gzip (ratio >= 1)");
}
