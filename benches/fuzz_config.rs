//! A mutation fuzzer for the config loaders: starts from the sample world's config repo and
//! `.pipeline/config.yaml` files and the invalid corpora, mutates them (bytes, lines and YAML
//! punctuation), and runs `config::load` and `config::pipeline::check` on every mutant. Any
//! panic is a bug: the input is written to `target/fuzz-crashes/` and the run fails.
//!
//! Run: `cargo bench --bench fuzz_config -- [--execs N] [--seed S]` (1,000,000 executions by
//! default). Under `cargo test` it runs a few thousand as a smoke test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use seakeeper::config;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&str] = &[
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "*a",
    "&a ",
    "!!binary ",
    "\t",
    "\"",
    "'",
    "#",
    "\n",
    "? ",
    "99999999999999999999999",
    "-1",
    "null",
    "~",
    "true",
    "é",
    "\u{202e}",
    "sha256:",
    "@sha256:",
    "use: php",
    "projects/",
    "../",
    "*/5 * * * *",
    "promote:",
    "merge:*",
    "<<: *a",
    "---\n",
    "...\n",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below(16);
                v.drain(i..(i + n).min(v.len()));
            }
            3 => {
                let i = rng.below(v.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                v.splice(i..i, t.iter().copied());
            }
            4 => {
                let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
                let line = lines[rng.below(lines.len())];
                let i = rng.below(v.len() + 1);
                let mut ins = line.to_vec();
                ins.push(b'\n');
                v.splice(i..i, ins);
            }
            5 => {
                let n = rng.below(v.len() + 1);
                v.truncate(n);
            }
            _ => {
                let mut lines: Vec<Vec<u8>> =
                    v.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(a, b);
                }
                v = lines.join(&b'\n');
            }
        }
    }
    v
}

fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (mut execs, mut seed) = (if bench { 1_000_000u64 } else { 3_000 }, 0x5ea_4ee9_u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--execs" => {
                execs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--execs takes a number")
            }
            "--seed" => {
                seed = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seed takes a number")
            }
            _ => {}
        }
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let world = tmp.path().join("world");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        Command::new(root.join("fixtures/make-sample-world"))
            .arg(&world)
            .output()
            .expect("world")
            .status
            .success()
    );
    let config_files = read_tree(&world.join("config"));
    let layout = config::load(&config_files).expect("the sample config is valid");
    let mut pipelines: Vec<Vec<u8>> = [
        "mediawiki/core",
        "mediawiki/extensions/Cite",
        "operations/software/thumbor",
    ]
    .iter()
    .map(|p| {
        std::fs::read(world.join("repos").join(p).join(".pipeline/config.yaml")).expect("pipeline")
    })
    .collect();
    for e in std::fs::read_dir(root.join("fixtures/invalid-pipeline")).expect("corpus") {
        pipelines.push(std::fs::read(e.expect("entry").path()).expect("read"));
    }
    let paths: Vec<String> = config_files.keys().cloned().collect();
    let project: seakeeper::model::ProjectName = "mediawiki/core".parse().expect("name");
    let crash_dir =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
            .join("fuzz-crashes");
    std::panic::set_hook(Box::new(|_| {}));

    let mut rng = Rng(seed | 1);
    let (mut valid, mut invalid, mut crashes) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for n in 0..execs {
        let outcome = if n % 2 == 0 {
            let mut files = config_files.clone();
            let path = &paths[rng.below(paths.len())];
            let mutated = mutate(&mut rng, &files[path]);
            files.insert(path.clone(), mutated.clone());
            let r = std::panic::catch_unwind(|| config::load(&files).is_ok());
            r.map_err(|_| (format!("config-{n}-{}", path.replace('/', "_")), mutated))
        } else {
            let seed_input = &pipelines[rng.below(pipelines.len())];
            let mutated = mutate(&mut rng, seed_input);
            let text = String::from_utf8_lossy(&mutated).into_owned();
            let r = std::panic::catch_unwind(|| {
                config::pipeline::check(
                    ".pipeline/config.yaml",
                    &text,
                    Some(&project),
                    Some(&layout),
                )
                .is_ok()
            });
            r.map_err(|_| (format!("pipeline-{n}"), mutated))
        };
        match outcome {
            Ok(true) => valid += 1,
            Ok(false) => invalid += 1,
            Err((name, input)) => {
                crashes += 1;
                std::fs::create_dir_all(&crash_dir).expect("crash dir");
                std::fs::write(crash_dir.join(name), input).expect("write crash");
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = std::panic::take_hook();
    println!(
        "# config fuzzing: {execs} executions in {secs:.1} s ({:.0}/s), seed {seed}: {valid} mutants valid, {invalid} rejected with errors, {crashes} panics",
        execs as f64 / secs
    );
    assert_eq!(
        crashes,
        0,
        "panics found; inputs are in {}",
        crash_dir.display()
    );
}
