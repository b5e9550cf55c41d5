//! A mutation fuzzer for the parsers that read input from outside seakeeper: Gerrit
//! stream-events lines, Gerrit REST answers (through the real client, against a local server),
//! ledger record files (through the ledger reader and the verifier's record checks) and import
//! lines, and the YAML limit scan in front of every config parse. It starts from the samples in
//! `fixtures/` and the sample ledger records, mutates them (bytes, ranges, splices, JSON and YAML
//! punctuation, huge numbers, unicode, and values swapped inside the parsed document), and runs
//! each mutant once. Any panic is a bug: the input is written to
//! `$CARGO_TARGET_DIR/fuzz-crashes/<target>-<n>` (with `<target>-<n>.panic` saying where it
//! panicked) and the run fails. It never works around a panic; it only reports it.
//!
//! Run: `cargo bench --bench fuzz_inputs -- [--execs N] [--seed S]` (250,000 executions per
//! target by default). Under `cargo test` it runs 2,000 per target as a smoke test.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use seakeeper::config;
use seakeeper::gerrit::http::HttpError;
use seakeeper::gerrit::{self, Rest, RestError, RetryPolicy, ReviewInput};
use seakeeper::ledger::layout;
use seakeeper::ledger::{self, Ledger};
use seakeeper::model::{self, Record};

type Json = serde_json::Value;
type Yaml = yaml_serde::Value;

/// A single execution running longer than this is reported as a hang and fails the run.
const HANG: Duration = Duration::from_secs(30);

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

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Inserted at random places: JSON and YAML punctuation, numbers at the edges of every integer
/// type, unicode that trips byte/char confusion, and fragments of the values the parsers know.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\uDFFF",
    "null",
    "true",
    "-",
    "-0",
    "1e400",
    "1e-400",
    "0x10",
    "NaN",
    "- ",
    "? ",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!int ",
    "!custom ",
    "|",
    ">-",
    "---\n",
    "...\n",
    "#",
    "\t",
    "\r\n",
    "%YAML 1.2\n",
    "'",
    "~",
    "é",
    "\u{202e}",
    "\u{feff}",
    "\u{0}",
    "\u{ffff}",
    "\u{10ffff}",
    "😀",
    ")]}'\n",
    "refs/changes/",
    "refs/heads/",
    "sha256:",
    "record: ",
    "0000000000000000000000000000000000000000",
    "../",
    "/",
    " ",
];

/// Replace a run of digits (or are inserted): the edges of u32, i32, u64, i64 and beyond.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "1e400",
    "-1e400",
    "0.5",
    "1.7976931348623157e308",
    "253402300800",
    "-377705116800",
];

/// Values put in place of a node of a parsed document (as JSON; YAML reads them too).
const VALUES: &[&str] = &[
    "0",
    "-1",
    "2147483648",
    "-2147483649",
    "4294967296",
    "18446744073709551615",
    "-9223372036854775808",
    "1.5",
    "-0.0",
    "\"\"",
    "\" \"",
    "\"2\"",
    "\"-1\"",
    "\"18446744073709551616\"",
    "null",
    "true",
    "[]",
    "{}",
    "[[]]",
    "{\"\":null}",
    "\"é\u{202e}\\u0000\"",
    "\"\\n\\t\\u0007\"",
    "\"../../etc/passwd\"",
    "\"a//b\"",
    "\"/\"",
    "\"refs/changes/11/4711/2\"",
    "\"refs/heads/main\"",
    "\"HEAD\"",
    "\"0000000000000000000000000000000000000000\"",
    "\"a7c4e1f09b2d3c5e8f6a0b1c2d3e4f5a6b7c8d9\"",
    "\"sha256:\"",
    "\"sha256:0123\"",
    "\"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85\"",
    "\"I8c2a5d61f0b74e3a9d1c6e2b7f40a9d35e18c7b2\"",
    "\"2026-11-22T02:30:00Z\"",
    "\"9999-12-31T23:59:59Z\"",
    "\"-009999-01-01T00:00:00Z\"",
    "\"2026-13-40T99:99:99Z\"",
    "\"2024-06-10 08:13:20.000000000\"",
    "\"patchset-created\"",
    "\"comment-added\"",
    "\"change-merged\"",
    "\"ref-updated\"",
    "\"batch-ref-updated\"",
    "\"dropped-output\"",
    "\"build-request\"",
    "\"attestation\"",
    "\"promotion\"",
    "\"freeze\"",
    "\"expiry\"",
    "\"NEW\"",
    "\"MERGED\"",
    "\"all\"",
    "\"promote:\"",
    "\"merge:*\"",
];

/// The stream-event types `parse_line` reads field by field.
const EVENT_TYPES: &[&str] = &[
    "patchset-created",
    "comment-added",
    "change-merged",
    "change-abandoned",
    "change-restored",
    "ref-updated",
    "batch-ref-updated",
    "project-created",
    "dropped-output",
    "reviewer-added",
    "reviewer-deleted",
    "vote-deleted",
    "wip-state-changed",
    "private-state-changed",
    "topic-changed",
    "hashtags-changed",
    "change-deleted",
    "assignee-changed",
];

fn mutate_bytes(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(11) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                let b = *rng.pick(&[0u8, 0x7f, 0x80, 0xc3, 0xff, b'"', b'\n', b'\\', b' ']);
                v.insert(
                    i,
                    if rng.below(2) == 0 {
                        b
                    } else {
                        rng.next() as u8
                    },
                );
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below(32);
                v.drain(i..(i + n).min(v.len()));
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let end = (i + 1 + rng.below(64)).min(v.len());
                let copy = v[i..end].to_vec();
                let at = rng.below(v.len() + 1);
                for _ in 0..1 + rng.below(3) {
                    v.splice(at..at, copy.iter().copied());
                }
            }
            4 => {
                // Splice: the head of this input, the tail of another.
                let head = rng.below(v.len() + 1);
                let tail = rng.below(other.len() + 1);
                v.truncate(head);
                v.extend_from_slice(&other[tail..]);
            }
            5 => {
                let i = rng.below(v.len() + 1);
                let t = rng.pick(TOKENS).as_bytes();
                v.splice(i..i, t.iter().copied());
            }
            6 => {
                let digits: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_ascii_digit()).collect();
                let n = rng.pick(NUMBERS).as_bytes();
                if digits.is_empty() {
                    let i = rng.below(v.len() + 1);
                    v.splice(i..i, n.iter().copied());
                } else {
                    let start = *rng.pick(&digits);
                    let end = (start..v.len())
                        .find(|&i| !v[i].is_ascii_digit())
                        .unwrap_or(v.len());
                    v.splice(start..end, n.iter().copied());
                }
            }
            7 => {
                let n = rng.below(v.len() + 1);
                v.truncate(n);
            }
            8 => {
                let mut lines: Vec<Vec<u8>> =
                    v.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(a, b);
                }
                v = lines.join(&b'\n');
            }
            _ => {
                let c = char::from_u32(rng.next() as u32 % 0x11_0000).unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                let i = rng.below(v.len() + 1);
                v.splice(i..i, c.encode_utf8(&mut buf).bytes());
            }
        }
    }
    v
}

/// Values and keys taken from the corpus, for structure-aware mutations.
struct Dict<V> {
    docs: Vec<V>,
    keys: Vec<String>,
    values: Vec<V>,
}

fn json_nodes(v: &Json) -> usize {
    1 + match v {
        Json::Array(a) => a.iter().map(json_nodes).sum(),
        Json::Object(o) => o.values().map(json_nodes).sum(),
        _ => 0,
    }
}

/// The `n`th node in pre-order (`n` below `json_nodes(v)`).
fn json_nth(v: &mut Json, n: usize) -> &mut Json {
    if n == 0 {
        return v;
    }
    let mut n = n - 1;
    let children: Vec<&mut Json> = match v {
        Json::Array(a) => a.iter_mut().collect(),
        Json::Object(o) => o.values_mut().collect(),
        _ => return v,
    };
    let mut last = None;
    for c in children {
        let k = json_nodes(c);
        if n < k {
            return json_nth(c, n);
        }
        n -= k;
        last = Some(c);
    }
    last.expect("n is below the node count, so some child holds it")
}

fn json_keys(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::Array(a) => a.iter().for_each(|c| json_keys(c, out)),
        Json::Object(o) => {
            for (k, c) in o {
                out.push(k.clone());
                json_keys(c, out);
            }
        }
        _ => {}
    }
}

fn json_dict(docs: Vec<Json>) -> Dict<Json> {
    let mut keys = Vec::new();
    docs.iter().for_each(|d| json_keys(d, &mut keys));
    keys.sort();
    keys.dedup();
    let values = VALUES
        .iter()
        .map(|v| serde_json::from_str(v).expect("the VALUES are JSON"))
        .collect();
    Dict { docs, keys, values }
}

fn mutate_json(rng: &mut Rng, doc: &mut Json, dict: &Dict<Json>) {
    let donor = rng.pick(&dict.docs).clone();
    let total = json_nodes(doc);
    let node = json_nth(doc, rng.below(total));
    match rng.below(7) {
        0 | 1 => *node = rng.pick(&dict.values).clone(),
        2 => {
            let mut donor = donor;
            let n = rng.below(json_nodes(&donor));
            *node = json_nth(&mut donor, n).take();
        }
        3 => match node {
            Json::Object(o) if !o.is_empty() => {
                let i = rng.below(o.len());
                let key = o.keys().nth(i).cloned().expect("i is below the length");
                o.remove(&key);
            }
            Json::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            other => *other = Json::Null,
        },
        4 => match node {
            Json::Object(o) => {
                let key = rng.pick(&dict.keys).clone();
                o.insert(key, rng.pick(&dict.values).clone());
            }
            Json::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                let copy = a[i].clone();
                a.push(copy);
            }
            other => *other = Json::Array(vec![other.take()]),
        },
        5 => {
            if let Json::Object(o) = node
                && !o.is_empty()
            {
                // Rename a key to another key of the corpus (a field moved or misspelt).
                let i = rng.below(o.len());
                let key = o.keys().nth(i).cloned().expect("i is below the length");
                let value = o.remove(&key).unwrap_or_default();
                o.insert(rng.pick(&dict.keys).clone(), value);
            } else if let Json::String(s) = node {
                *s = String::from_utf8_lossy(&mutate_bytes(rng, s.as_bytes(), b"")).into_owned();
            }
        }
        _ => {
            let mut x = node.take();
            for _ in 0..1 + rng.below(160) {
                x = if rng.below(2) == 0 {
                    Json::Array(vec![x])
                } else {
                    Json::Object([("a".to_owned(), x)].into_iter().collect())
                };
            }
            *node = x;
        }
    }
}

fn yaml_nodes(v: &Yaml) -> usize {
    1 + match v {
        Yaml::Sequence(a) => a.iter().map(yaml_nodes).sum(),
        Yaml::Mapping(m) => m.values().map(yaml_nodes).sum(),
        Yaml::Tagged(t) => yaml_nodes(&t.value),
        _ => 0,
    }
}

/// The `n`th node in pre-order (`n` below `yaml_nodes(v)`).
fn yaml_nth(v: &mut Yaml, n: usize) -> &mut Yaml {
    if n == 0 {
        return v;
    }
    let mut n = n - 1;
    let children: Vec<&mut Yaml> = match v {
        Yaml::Sequence(a) => a.iter_mut().collect(),
        Yaml::Mapping(m) => m.values_mut().collect(),
        Yaml::Tagged(t) => vec![&mut t.value],
        _ => return v,
    };
    let mut last = None;
    for c in children {
        let k = yaml_nodes(c);
        if n < k {
            return yaml_nth(c, n);
        }
        n -= k;
        last = Some(c);
    }
    last.expect("n is below the node count, so some child holds it")
}

fn yaml_keys(v: &Yaml, out: &mut Vec<String>) {
    match v {
        Yaml::Sequence(a) => a.iter().for_each(|c| yaml_keys(c, out)),
        Yaml::Mapping(m) => {
            for (k, c) in m {
                if let Some(k) = k.as_str() {
                    out.push(k.to_owned());
                }
                yaml_keys(c, out);
            }
        }
        Yaml::Tagged(t) => yaml_keys(&t.value, out),
        _ => {}
    }
}

fn yaml_dict(docs: Vec<Yaml>) -> Dict<Yaml> {
    let mut keys = Vec::new();
    docs.iter().for_each(|d| yaml_keys(d, &mut keys));
    keys.sort();
    keys.dedup();
    let mut values: Vec<Yaml> = VALUES
        .iter()
        .map(|v| yaml_serde::from_str(v).expect("the VALUES are YAML"))
        .collect();
    for v in [
        "~",
        "0o17",
        "0x1F",
        ".inf",
        "-.inf",
        ".nan",
        "!!binary aGVsbG8=",
        "!custom {a: 1}",
        "2026-11-22",
        "''",
        "|\n  a\n  b\n",
    ] {
        values.push(yaml_serde::from_str(v).expect("YAML values"));
    }
    Dict { docs, keys, values }
}

fn mutate_yaml(rng: &mut Rng, doc: &mut Yaml, dict: &Dict<Yaml>) {
    let donor = rng.pick(&dict.docs).clone();
    let total = yaml_nodes(doc);
    let node = yaml_nth(doc, rng.below(total));
    match rng.below(7) {
        0 | 1 => *node = rng.pick(&dict.values).clone(),
        2 => {
            let mut donor = donor;
            let n = rng.below(yaml_nodes(&donor));
            *node = std::mem::take(yaml_nth(&mut donor, n));
        }
        3 => match node {
            Yaml::Mapping(m) if !m.is_empty() => {
                let i = rng.below(m.len());
                let key = m.keys().nth(i).cloned().expect("i is below the length");
                m.shift_remove(&key);
            }
            Yaml::Sequence(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            other => *other = Yaml::Null,
        },
        4 => match node {
            Yaml::Mapping(m) => {
                let key = Yaml::String(rng.pick(&dict.keys).clone());
                m.insert(key, rng.pick(&dict.values).clone());
            }
            Yaml::Sequence(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                let copy = a[i].clone();
                a.push(copy);
            }
            other => *other = Yaml::Sequence(vec![std::mem::take(other)]),
        },
        5 => {
            if let Yaml::Mapping(m) = node
                && !m.is_empty()
            {
                let i = rng.below(m.len());
                let key = m.keys().nth(i).cloned().expect("i is below the length");
                let value = m.shift_remove(&key).unwrap_or_default();
                m.insert(Yaml::String(rng.pick(&dict.keys).clone()), value);
            } else if let Yaml::String(s) = node {
                *s = String::from_utf8_lossy(&mutate_bytes(rng, s.as_bytes(), b"")).into_owned();
            }
        }
        _ => {
            let mut x = std::mem::take(node);
            for _ in 0..1 + rng.below(160) {
                x = Yaml::Sequence(vec![x]);
            }
            *node = x;
        }
    }
}

/// Mutates a JSON text (with Gerrit's `)]}'` line, if it has one): half the time inside the
/// parsed document, then perhaps its bytes too; otherwise its bytes only.
fn mutate_json_text(rng: &mut Rng, seed: &[u8], other: &[u8], dict: &Dict<Json>) -> Vec<u8> {
    let (prefix, body) = match seed.strip_prefix(b")]}'\n") {
        Some(rest) => (&seed[..5], rest),
        None => (&seed[..0], seed),
    };
    if rng.below(2) == 0
        && let Ok(mut doc) = serde_json::from_slice::<Json>(body)
    {
        for _ in 0..1 + rng.below(3) {
            mutate_json(rng, &mut doc, dict);
        }
        let mut out = prefix.to_vec();
        out.extend(serde_json::to_vec(&doc).expect("a Value serializes"));
        if rng.below(4) == 0 {
            out = mutate_bytes(rng, &out, other);
        }
        return out;
    }
    mutate_bytes(rng, seed, other)
}

/// Mutates a YAML text the same way. The first line of a ledger record (`record: <kind>`) is
/// kept in front, as the writer puts it, so the reader's fast path sees most mutants.
fn mutate_yaml_text(rng: &mut Rng, seed: &[u8], other: &[u8], dict: &Dict<Yaml>) -> Vec<u8> {
    if rng.below(2) == 0
        && let Ok(mut doc) = yaml_serde::from_slice::<Yaml>(seed)
    {
        for _ in 0..1 + rng.below(3) {
            mutate_yaml(rng, &mut doc, dict);
        }
        if let Ok(text) = yaml_serde::to_string(&doc) {
            let mut out = text.into_bytes();
            if rng.below(4) == 0 {
                out = mutate_bytes(rng, &out, other);
            }
            return out;
        }
    }
    mutate_bytes(rng, seed, other)
}

/// What one target saw.
#[derive(Default)]
struct Tally {
    execs: u64,
    accepted: u64,
    /// Error messages, cut to their first 60 characters, with how often each was seen.
    errors: BTreeMap<String, u64>,
    panics: u64,
    slowest: Duration,
    /// The input of the slowest execution, and what it was fed to.
    slowest_input: (Vec<u8>, String),
    elapsed: Duration,
}

impl Tally {
    fn rejected(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The panic message and backtrace of the last panic, recorded by the (silent) panic hook.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

thread_local! {
    /// Whether this thread is inside an execution, where a panic is a finding to record
    /// quietly; anywhere else it is the fuzzer's own failure and is printed.
    static IN_EXEC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The execution in progress, for the hang watchdog.
struct Armed {
    target: &'static str,
    n: u64,
    input: Vec<u8>,
    since: Instant,
}

struct Fuzz {
    crash_dir: PathBuf,
    current: Arc<Mutex<Option<Armed>>>,
}

impl Fuzz {
    fn new(crash_dir: PathBuf) -> Fuzz {
        let current: Arc<Mutex<Option<Armed>>> = Arc::default();
        let watched = Arc::clone(&current);
        let dir = crash_dir.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let guard = watched.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(a) = guard.as_ref()
                    && a.since.elapsed() > HANG
                {
                    let path = dir.join(format!("{}-{}.hang", a.target, a.n));
                    std::fs::create_dir_all(&dir).expect("crash dir");
                    std::fs::write(&path, &a.input).expect("write hang");
                    eprintln!(
                        "{} execution {} ran over {} s; input in {}",
                        a.target,
                        a.n,
                        HANG.as_secs(),
                        path.display()
                    );
                    std::process::exit(2);
                }
            }
        });
        Fuzz { crash_dir, current }
    }

    /// Runs one execution, catching any panic; `note` says what the input was fed to.
    fn exec(
        &self,
        tally: &mut Tally,
        target: &'static str,
        n: u64,
        input: &[u8],
        note: &str,
        run: impl FnOnce() -> Result<(), String>,
    ) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Armed {
            target,
            n,
            input: input.to_vec(),
            since: Instant::now(),
        });
        let started = Instant::now();
        IN_EXEC.set(true);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(run));
        IN_EXEC.set(false);
        let took = started.elapsed();
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
        tally.execs += 1;
        if took > tally.slowest {
            tally.slowest = took;
            tally.slowest_input = (input.to_vec(), note.to_owned());
        }
        match outcome {
            Ok(Ok(())) => tally.accepted += 1,
            Ok(Err(message)) => {
                *tally
                    .errors
                    .entry(message.chars().take(60).collect())
                    .or_default() += 1;
            }
            Err(_) => {
                tally.panics += 1;
                let panic = LAST_PANIC
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .unwrap_or_default();
                std::fs::create_dir_all(&self.crash_dir).expect("crash dir");
                let path = self.crash_dir.join(format!("{target}-{n}"));
                std::fs::write(&path, input).expect("write crash");
                std::fs::write(
                    path.with_extension("panic"),
                    format!("{target} execution {n}: {note}\n{panic}\n"),
                )
                .expect("write panic");
            }
        }
    }
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    out.sort();
    out
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// 1. Gerrit stream-events lines

fn fuzz_events(fz: &Fuzz, rng: &mut Rng, execs: u64, root: &Path) -> Tally {
    let samples = root.join("fixtures/gerrit-samples");
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    let mut files: Vec<PathBuf> = read_dir_sorted(&samples)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
        .collect();
    // `gerrit query --format=JSON` lines: Gerrit JSON of another shape, fine as seeds too.
    files.push(samples.join("rest/ssh_gerrit_query_current-patch-set.jsonl"));
    for f in files {
        for line in read(&f).split(|&b| b == b'\n') {
            if !line.iter().all(u8::is_ascii_whitespace) {
                seeds.push(line.to_vec());
            }
        }
    }
    let dict = json_dict(
        seeds
            .iter()
            .filter_map(|s| serde_json::from_slice(s).ok())
            .collect(),
    );
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..execs {
        let seed = rng.pick(&seeds);
        let other = rng.pick(&seeds);
        let input = if rng.below(8) == 0 {
            // Another event type on the same fields: reaches every per-type reader.
            let mut doc: Json = serde_json::from_slice(seed).expect("the samples are JSON");
            doc["type"] = Json::String(rng.pick(EVENT_TYPES).to_string());
            if rng.below(2) == 0 {
                mutate_json(rng, &mut doc, &dict);
            }
            serde_json::to_vec(&doc).expect("a Value serializes")
        } else {
            mutate_json_text(rng, seed, other, &dict)
        };
        // As the stream reader does: lossy UTF-8, trailing white space trimmed.
        let text = String::from_utf8_lossy(&input).into_owned();
        fz.exec(&mut tally, "gerrit-events", n, &input, "parse_line", || {
            let event = gerrit::parse_line(text.trim_end()).map_err(|e| e.to_string())?;
            serde_json::to_string(&event).map_err(|e| format!("serializing the event: {e}"))?;
            Ok(())
        });
    }
    tally.elapsed = started.elapsed();
    tally
}

// ---------------------------------------------------------------------------------------------
// 2. Gerrit REST answers, through the real client against a local server

/// A local HTTP/1.1 server that answers each request with the next queued (status, body), or
/// with an empty JSON list when the queue is empty (so paging always ends). Hand-written so that
/// it keeps connections alive and sets `TCP_NODELAY`: each exchange then takes tens of
/// microseconds instead of a delayed-ACK round.
struct FakeGerrit {
    queue: Answers,
    base: String,
}

type Answers = Arc<Mutex<VecDeque<(u16, Vec<u8>)>>>;

impl FakeGerrit {
    fn start() -> FakeGerrit {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("a bound address").port();
        let queue: Answers = Arc::default();
        let answers = Arc::clone(&queue);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let answers = Arc::clone(&answers);
                std::thread::spawn(move || {
                    // A connection that breaks ends here; the client sees a transport error.
                    let _ = FakeGerrit::serve(conn, &answers);
                });
            }
        });
        FakeGerrit {
            queue,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn serve(conn: TcpStream, answers: &Answers) -> std::io::Result<()> {
        conn.set_nodelay(true)?;
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut writer = conn;
        let mut line = String::new();
        loop {
            let mut length = 0usize;
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut request = vec![0u8; length];
            reader.read_exact(&mut request)?;
            let (status, body) = answers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
                .unwrap_or_else(|| (200, b")]}'\n[]\n".to_vec()));
            // No body may follow a 204 (the client would read it as the next answer).
            let body = if status == 204 { Vec::new() } else { body };
            let content_type = if (200..300).contains(&status) {
                "application/json; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            let mut out = format!(
                "HTTP/1.1 {status} Fuzz\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(&body);
            writer.write_all(&out)?;
        }
    }

    fn answer(&self, answers: Vec<(u16, Vec<u8>)>) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.clear();
        q.extend(answers);
    }
}

fn rest_message(e: RestError) -> String {
    match e {
        RestError::Decode { message, .. } => message,
        RestError::Status { status, text, .. } => format!("status {status}: {text}"),
        RestError::Http(HttpError::Transport { message, .. }) => format!("transport: {message}"),
    }
}

fn fuzz_rest(fz: &Fuzz, rng: &mut Rng, execs: u64, root: &Path) -> Tally {
    let dir = root.join("fixtures/gerrit-samples/rest");
    let body = |name: &str| read(&dir.join(name));
    let change =
        body("GET_changes_4711.o=CURRENT_REVISION+CURRENT_COMMIT+LABELS+DETAILED_ACCOUNTS.body");
    let review = body("POST_review.response.body");
    let submit = body("POST_submit.response.body");
    let branches = body("GET_projects_acme%2Fwidgets_branches.body");
    let conflict_file = String::from_utf8(body("POST_submit.409.response.txt")).expect("UTF-8");
    let conflict = conflict_file
        .split_once("\n\n")
        .map_or(conflict_file.as_str(), |(_, b)| b)
        .as_bytes()
        .to_vec();
    let merged = b"change is merged\n".to_vec();
    let version = b")]}'\n\"3.10.1\"\n".to_vec();
    // Two pages of a query: the first says there are more.
    let change_doc: Json =
        serde_json::from_slice(&change[5..]).expect("the change sample is JSON after )]}'");
    let mut more = change_doc.clone();
    more["_more_changes"] = Json::Bool(true);
    let mut second = change_doc.clone();
    second["_number"] = Json::from(4712);
    let page = |docs: Vec<Json>| {
        let mut out = b")]}'\n".to_vec();
        out.extend(serde_json::to_vec(&Json::Array(docs)).expect("serializes"));
        out
    };
    let page1 = page(vec![change_doc.clone(), more]);
    let page2 = page(vec![second]);
    let corpus = [
        &change, &review, &submit, &branches, &conflict, &merged, &version, &page1, &page2,
    ];
    let dict = json_dict(
        corpus
            .iter()
            .filter_map(|b| serde_json::from_slice(b.strip_prefix(b")]}'\n")?).ok())
            .collect(),
    );

    let gerrit = FakeGerrit::start();
    let no_retry = RetryPolicy {
        attempts: 1,
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };
    let rest = Rest::new(&gerrit.base, None, Duration::from_secs(20))
        .expect("a valid base URL")
        .with_retry(no_retry);
    // For the submit whose answer was lost: a 5xx, then `409 change is merged`, then a read.
    let rest_retrying = rest.clone().with_retry(RetryPolicy {
        attempts: 2,
        ..no_retry
    });
    let project: model::ProjectName = "acme/widgets".parse().expect("a project name");
    let number = model::ChangeNumber::try_from(4711u64).expect("a change number");
    let input = ReviewInput::for_pipeline("check", "Build succeeded.", Some(1));
    const STATUSES: &[u16] = &[
        200, 201, 204, 400, 401, 403, 404, 409, 412, 422, 429, 500, 502, 503,
    ];
    const CALLS: &[&str] = &[
        "get_change",
        "query_changes",
        "post_review",
        "submit",
        "submit after a lost answer",
        "list_branches",
        "server_version",
    ];

    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..execs {
        let call = rng.below(CALLS.len());
        let mut answers: Vec<(u16, Vec<u8>)> = match call {
            0 => vec![(200, change.clone())],
            1 if rng.below(2) == 0 => vec![(200, page1.clone())],
            1 => vec![(200, page1.clone()), (200, page2.clone())],
            2 => vec![(200, review.clone())],
            3 if rng.below(4) == 0 => vec![(409, conflict.clone())],
            3 => vec![(200, submit.clone())],
            4 => vec![
                (503, b"busy".to_vec()),
                (409, merged.clone()),
                (200, change.clone()),
            ],
            5 => vec![(200, branches.clone())],
            _ => vec![(200, version.clone())],
        };
        let m = if call == 4 {
            1 + rng.below(2)
        } else {
            rng.below(answers.len())
        };
        let other = rng.pick(&corpus);
        answers[m].1 = mutate_json_text(rng, &answers[m].1, other, &dict);
        if rng.below(16) == 0 {
            answers[m].0 = *rng.pick(STATUSES);
        }
        let note = format!(
            "{} answered by {:?}; answer {} (status {}) is this input",
            CALLS[call],
            answers.iter().map(|a| a.0).collect::<Vec<_>>(),
            m + 1,
            answers[m].0
        );
        let mutated = answers[m].1.clone();
        gerrit.answer(answers);
        fz.exec(&mut tally, "gerrit-rest", n, &mutated, &note, || {
            match call {
                0 => {
                    let c = rest.get_change(&project, number).map_err(rest_message)?;
                    c.label_range("Verified");
                }
                1 => {
                    rest.query_changes("status:open project:acme/widgets", 2)
                        .map_err(rest_message)?;
                }
                2 => {
                    rest.post_review(&project, number, "current", &input)
                        .map_err(rest_message)?;
                }
                3 => {
                    rest.submit(&project, number).map_err(rest_message)?;
                }
                4 => {
                    rest_retrying
                        .submit(&project, number)
                        .map_err(rest_message)?;
                }
                5 => {
                    rest.list_branches(&project).map_err(rest_message)?;
                }
                _ => {
                    rest.server_version().map_err(rest_message)?;
                }
            }
            Ok(())
        });
    }
    tally.elapsed = started.elapsed();
    tally
}

// ---------------------------------------------------------------------------------------------
// 3. Ledger records: read back through `Snapshot::record` from a real repository, then checked
//    as `ledger verify` checks them; and import lines, as `seakeeper ledger import` reads them

/// The sample records with the paths the writer gives them, plus kinds the sample lacks.
fn ledger_seeds() -> Vec<(String, Record)> {
    let mut records = ledger::sample::records(0, 200);
    let commit: model::CommitId = "0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5"
        .parse()
        .expect("a commit id");
    let at = |s: i64| model::Timestamp::from_second(s).expect("in range");
    for (state, scope) in [
        (model::FreezeState::Active, vec!["all".to_owned()]),
        (
            model::FreezeState::Lifted,
            vec![
                "promote:production".to_owned(),
                "merge:mediawiki/*".to_owned(),
            ],
        ),
    ] {
        records.push(Record::Freeze(model::Freeze {
            name: "production-all-hands".parse().expect("a freeze name"),
            state,
            scope,
            reason: "All-hands week: no deploys.\nAsk #releng.".into(),
            config_commit: commit.clone(),
            author: "Release Engineering <releng@example.org>".into(),
        }));
    }
    records.push(Record::Expiry(model::record::Expiry {
        digest: model::Digest::of(b"image 3"),
        name: "logs/b00000003.log".into(),
        store: "registry.testing.example.org".into(),
        rule: "untrusted artifacts expire after 30 days".into(),
        expired_at: at(1_797_592_000),
    }));
    let requests: Vec<model::BuildRequest> = records
        .iter()
        .filter_map(|r| match r {
            Record::BuildRequest(q) => Some(q.clone()),
            _ => None,
        })
        .take(2)
        .collect();
    for (i, mut q) in requests.into_iter().enumerate() {
        q.build_id = format!("caused{i}").parse().expect("a build id");
        q.cause = Some(if i == 0 {
            model::record::BuildCause::Upstream {
                build_id: "b00000000".parse().expect("a build id"),
                project: "mediawiki/core".parse().expect("a project"),
                commit: commit.clone(),
            }
        } else {
            model::record::BuildCause::Schedule {
                name: "nightly".into(),
                tick: at(1_795_000_000),
            }
        });
        records.push(Record::BuildRequest(q));
    }
    let mut requested = HashMap::new();
    records
        .into_iter()
        .map(|r| {
            let bytes = layout::encode_record(&r);
            let path = match &r {
                Record::BuildRequest(q) => {
                    requested.insert(q.build_id.clone(), q.requested_at);
                    layout::canonical_path(&r, &bytes).expect("requests have a canonical path")
                }
                Record::BuildResult(q) => format!(
                    "{}/result.yaml",
                    layout::build_dir(requested[&q.build_id], &q.build_id)
                ),
                Record::Artifact(a) => layout::artifact_path(&a.digest),
                other => layout::canonical_path(other, &bytes).expect("content-addressed"),
            };
            (path, r)
        })
        .collect()
}

/// A bare repository whose `refs/heads/main` (the ledger ref) holds `files`, by `git
/// fast-import`: one process per batch keeps the cost per record small.
fn write_repository(repo: &Path, files: &[(String, Vec<u8>)]) {
    let git = |args: &[&str]| {
        let mut c = Command::new("git");
        c.env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(args);
        c
    };
    let status = git(&["init", "--bare", "-q"])
        .arg(repo)
        .status()
        .expect("git init");
    assert!(status.success(), "git init --bare failed");
    let mut child = git(&["fast-import", "--quiet", "--done"])
        .env("GIT_DIR", repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("git fast-import");
    {
        let stdin = child.stdin.take().expect("piped stdin");
        let mut w = std::io::BufWriter::new(stdin);
        for (i, (_, bytes)) in files.iter().enumerate() {
            write!(w, "blob\nmark :{}\ndata {}\n", i + 1, bytes.len()).expect("write");
            w.write_all(bytes).expect("write");
            w.write_all(b"\n").expect("write");
        }
        w.write_all(
            b"commit refs/heads/main\ncommitter Fuzz <fuzz@example.org> 1700000000 +0000\ndata 4\nfuzz\n",
        )
        .expect("write");
        for (i, (path, _)) in files.iter().enumerate() {
            writeln!(w, "M 100644 :{} {path}", i + 1).expect("write");
        }
        w.write_all(b"\ndone\n").expect("write");
    }
    assert!(
        child.wait().expect("git fast-import").success(),
        "git fast-import failed"
    );
}

fn fuzz_ledger(fz: &Fuzz, rng: &mut Rng, execs: u64) -> Tally {
    const BATCH: u64 = 2_000;
    let seeds: Vec<(String, Vec<u8>)> = ledger_seeds()
        .iter()
        .map(|(p, r)| (p.clone(), layout::encode_record(r)))
        .collect();
    let yaml = yaml_dict(
        seeds
            .iter()
            .filter_map(|(_, b)| yaml_serde::from_slice(b).ok())
            .collect(),
    );
    let json = json_dict(
        seeds
            .iter()
            .filter_map(|(_, b)| serde_json::from_slice(b).ok())
            .collect(),
    );
    let work = tempfile::tempdir().expect("temp dir");
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut n = 0;
    while n < execs {
        let size = BATCH.min(execs - n);
        // (the path the verifier would see, the path in the fuzz repository, the bytes)
        let mut batch: Vec<(String, String, Vec<u8>)> = Vec::with_capacity(size as usize);
        for j in 0..size {
            let (path, seed) = rng.pick(&seeds);
            let (_, other) = rng.pick(&seeds);
            let bytes = if path.ends_with(".json") {
                let mut b = mutate_json_text(rng, seed, other, &json);
                if rng.below(4) == 0
                    && let Ok(mut doc) = serde_json::from_slice::<Json>(&b)
                    && let Some(mutated) = mutate_statement(rng, &doc, &json)
                {
                    doc["envelope"]["payload"] = Json::String(mutated);
                    b = serde_json::to_vec_pretty(&doc).expect("serializes");
                }
                b
            } else {
                mutate_yaml_text(rng, seed, other, &yaml)
            };
            // Now and then the other parser: YAML read as JSON, JSON as YAML.
            let json_file = path.ends_with(".json") != (rng.below(16) == 0);
            let ext = if json_file { "json" } else { "yaml" };
            batch.push((
                path.clone(),
                format!("f/{}/{}.{ext}", j / 64, j % 64),
                bytes,
            ));
        }
        let repo = work.path().join(format!("batch-{n}"));
        let files: Vec<(String, Vec<u8>)> = batch
            .iter()
            .map(|(_, stored, bytes)| (stored.clone(), bytes.clone()))
            .collect();
        write_repository(&repo, &files);
        let ledger = Ledger::open(&repo).expect("open the fuzz repository");
        let tip = ledger
            .tip()
            .expect("read the ledger ref")
            .expect("fast-import wrote the ledger ref");
        let snapshot = ledger.snapshot_at(tip).expect("a snapshot");
        for (j, (path, stored, bytes)) in batch.iter().enumerate() {
            let note = format!("a record file at {path} (stored at {stored})");
            fz.exec(
                &mut tally,
                "ledger-records",
                n + j as u64,
                bytes,
                &note,
                || {
                    // The writer reads existing artifacts and pointers with the general parser.
                    let _ = yaml_serde::from_slice::<Record>(bytes);
                    let record = snapshot
                        .record(stored)
                        .map_err(|e| {
                            let m = e.to_string();
                            let corrupt = format!("ledger data is corrupt: {stored}: ");
                            match m.strip_prefix(&corrupt) {
                                Some(rest) => rest.to_owned(),
                                None => m.replace(stored.as_str(), "<path>"),
                            }
                        })?
                        .ok_or("the fuzz repository lost the file")?;
                    record.validate()?;
                    seakeeper::ledger::check_record_path(
                        path,
                        &layout::classify(path),
                        &record,
                        bytes,
                    )?;
                    if let Record::BuildRequest(r) = &record {
                        let _ = layout::change_index_for(r);
                    }
                    layout::encode_record(&record);
                    Ok(())
                },
            );
        }
        drop(snapshot);
        drop(ledger);
        std::fs::remove_dir_all(&repo).expect("remove the batch repository");
        n += size;
    }
    tally.elapsed = started.elapsed();
    tally
}

/// The attestation's in-toto statement, decoded, mutated and encoded again (so that
/// `validate` reads past the base64).
fn mutate_statement(rng: &mut Rng, doc: &Json, dict: &Dict<Json>) -> Option<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64.decode(doc["envelope"]["payload"].as_str()?).ok()?;
    let text = mutate_json_text(rng, &payload, &payload, dict);
    Some(b64.encode(text))
}

fn fuzz_import(fz: &Fuzz, rng: &mut Rng, execs: u64) -> Tally {
    let seeds: Vec<Vec<u8>> = ledger_seeds()
        .iter()
        .map(|(_, r)| serde_json::to_vec(r).expect("records serialize"))
        .collect();
    let dict = json_dict(
        seeds
            .iter()
            .map(|s| serde_json::from_slice(s).expect("JSON"))
            .collect(),
    );
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..execs {
        let seed = rng.pick(&seeds);
        let other = rng.pick(&seeds);
        let input = mutate_json_text(rng, seed, other, &dict);
        let line = String::from_utf8_lossy(&input).into_owned();
        // As `seakeeper ledger import` reads a line, then as the writer encodes the record.
        fz.exec(
            &mut tally,
            "ledger-import",
            n,
            &input,
            "an import line",
            || {
                if line.trim().is_empty() {
                    return Ok(());
                }
                let record: Record = serde_json::from_str(&line).map_err(|e| e.to_string())?;
                record
                    .validate()
                    .map_err(|e| format!("invalid {}: {e}", record.kind().as_str()))?;
                if let Record::BuildResult(_) | Record::Artifact(_) = &record {
                    record
                        .build_id()
                        .expect("results and artifacts name a build");
                }
                layout::encode_record(&record);
                Ok(())
            },
        );
    }
    tally.elapsed = started.elapsed();
    tally
}

// ---------------------------------------------------------------------------------------------
// 4. The YAML limit scan, then the YAML parser, then the config type the file is read as

fn generated_yaml() -> Vec<(String, String)> {
    let flow = |d: usize| format!("a: {}1{}\n", "[".repeat(d), "]".repeat(d));
    let mut block = String::new();
    for i in 0..60 {
        block.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
    }
    block.push_str(&format!("{}v: 1\n", " ".repeat(60)));
    // Eight levels of eight aliases: 64 aliases (the limit), 8^8 leaves if expanded.
    let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x]\n");
    for i in 1..=8 {
        let refs = vec![format!("*l{}", i - 1); 8].join(", ");
        bomb.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    let mut many = String::from("base: &b {x: 1}\n");
    for i in 0..65 {
        many.push_str(&format!("k{i}: *b\n"));
    }
    vec![
        ("deep-flow.yaml".into(), flow(63)),
        ("deep-flow-over-the-limit.yaml".into(), flow(65)),
        ("deep-block.yaml".into(), block),
        ("deep-sequence.yaml".into(), format!("{}1\n", "- ".repeat(60))),
        ("alias-bomb.yaml".into(), bomb),
        ("many-aliases.yaml".into(), many),
        (
            "projects/fuzz/merge-keys.yaml".into(),
            "defaults: &d\n  timeout: 10m\n  image: x\njobs:\n  a:\n    <<: *d\n    name: a\n  b:\n    <<: [*d, *d]\n".into(),
        ),
        (
            "quotes.yaml".into(),
            "a: \"# [ { *x\"\nb: 'it''s [ *y'\nc: \"\\\\\" # [\nd: \"\\\"[\"\ne: [\"]\", '}', \"*z\"]\nf: x#[\ng: '\\'\n"
                .into(),
        ),
        (
            "multi-document.yaml".into(),
            "---\na: 1\n...\n---\nb: [1, {c: 2}]\n".into(),
        ),
        (
            "tags.yaml".into(),
            "a: !!binary aGVsbG8=\nb: !custom {x: 1}\nc: !!str 1\nd: !!int \"7\"\ne: !!float .nan\n"
                .into(),
        ),
        (
            "wide.yaml".into(),
            format!("a: [{}]\n", vec!["1"; 5000].join(", ")),
        ),
        ("crlf-tabs.yaml".into(), "a:\r\n\t- 1\r\n  - \"\t\"\r\n".into()),
        (
            "complex-keys.yaml".into(),
            "? &k [a, b]\n: 1\n? {x: *k}\n: 2\n*k : 3\n".into(),
        ),
        (
            "seakeeper.yaml".into(),
            "anchors: &a\n  b: &b\n    c: &c [1, 2]\n  d: *c\ne: *a\nf: [*a, *b, *c]\n".into(),
        ),
    ]
}

/// Parses `text` as the config type `file` is read as (`config::load` and `policies::resolve`).
#[allow(clippy::result_large_err)]
fn parse_typed(file: &str, text: &str) -> Result<(), config::ConfigError> {
    use config::files::{EnvironmentsFile, SchedulesFile};
    fn as_<T: serde::de::DeserializeOwned>(f: &str, t: &str) -> Result<(), config::ConfigError> {
        config::parse_yaml::<T>(f, t).map(|_| ())
    }
    let base = file.rsplit('/').next().unwrap_or(file);
    match file.split('/').next().unwrap_or(file) {
        "seakeeper.yaml" => as_::<config::Settings>(file, text),
        "environments.yaml" => as_::<EnvironmentsFile>(file, text),
        "schedules.yaml" => as_::<SchedulesFile>(file, text),
        "projects" => as_::<config::ProjectFile>(file, text),
        "promotions" => as_::<config::PromotionsFile>(file, text),
        "freezes" => as_::<config::FreezeFile>(file, text),
        "templates" => as_::<config::JobSpec>(file, text),
        "policies" => {
            let mut errors = Vec::new();
            config::policies::resolve(&[(base.to_owned(), text.to_owned())], &mut errors);
            errors.into_iter().next().map_or(Ok(()), Err)
        }
        _ => Ok(()),
    }
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    for p in read_dir_sorted(dir) {
        if p.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        if p.is_dir() {
            read_tree(root, &p, out);
        } else if p.extension().is_some_and(|e| e == "yaml") {
            let rel = p.strip_prefix(root).expect("under the root");
            let text = String::from_utf8(read(&p)).expect("the fixtures are UTF-8");
            out.push((rel.to_string_lossy().into_owned(), text));
        }
    }
}

fn fuzz_yaml(fz: &Fuzz, rng: &mut Rng, execs: u64, root: &Path) -> Tally {
    let mut seeds: Vec<(String, String)> = Vec::new();
    for case in read_dir_sorted(&root.join("fixtures/invalid-config")) {
        if case.is_dir() {
            read_tree(&case, &case, &mut seeds);
        }
    }
    let world = tempfile::tempdir().expect("temp dir");
    let world_dir = world.path().join("world");
    let made = Command::new(root.join("fixtures/make-sample-world"))
        .arg(&world_dir)
        .output()
        .expect("run make-sample-world");
    assert!(made.status.success(), "make-sample-world failed");
    let config_dir = world_dir.join("config");
    read_tree(&config_dir, &config_dir, &mut seeds);
    seeds.extend(generated_yaml());
    let dict = yaml_dict(
        seeds
            .iter()
            .filter_map(|(_, t)| yaml_serde::from_str(t).ok())
            .collect(),
    );
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..execs {
        let (file, seed) = rng.pick(&seeds);
        let (_, other) = rng.pick(&seeds);
        let input = mutate_yaml_text(rng, seed.as_bytes(), other.as_bytes(), &dict);
        let text = String::from_utf8_lossy(&input).into_owned();
        fz.exec(&mut tally, "yaml-limits", n, &input, file, || {
            config::check_yaml_limits(file, &text).map_err(|e| format!("limits: {}", e.message))?;
            config::parse_yaml::<Yaml>(file, &text).map_err(|e| e.message)?;
            parse_typed(file, &text).map_err(|e| match e.field.as_str() {
                "" => e.message,
                field => format!("{field}: {}", e.message),
            })
        });
    }
    tally.elapsed = started.elapsed();
    tally
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (mut execs, mut seed) = (if bench { 250_000u64 } else { 2_000 }, 0x5eed_f022_u64);
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let fz = Fuzz::new(target_dir.join("fuzz-crashes"));
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_EXEC.get() {
            return default_hook(info);
        }
        let backtrace = std::backtrace::Backtrace::force_capture();
        *LAST_PANIC.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(format!("{info}\n{backtrace}"));
    }));

    // Each target has its own stream of random numbers, so one can be rerun alone.
    let rng = |i: u64| Rng((seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
    let tallies: Vec<(&str, Tally)> = vec![
        ("gerrit-events", fuzz_events(&fz, &mut rng(1), execs, root)),
        ("gerrit-rest", fuzz_rest(&fz, &mut rng(2), execs, root)),
        ("ledger-records", fuzz_ledger(&fz, &mut rng(3), execs)),
        ("ledger-import", fuzz_import(&fz, &mut rng(4), execs)),
        ("yaml-limits", fuzz_yaml(&fz, &mut rng(5), execs, root)),
    ];
    let _ = std::panic::take_hook();

    let census = target_dir.join("fuzz-inputs");
    std::fs::create_dir_all(&census).expect("census dir");
    println!("# input fuzzing, seed {seed}, {execs} executions per target");
    println!(
        "{:<15} {:>9} {:>9} {:>9} {:>8} {:>7} {:>11} {:>9}",
        "target", "execs", "accepted", "rejected", "distinct", "panics", "slowest ms", "execs/s"
    );
    let (mut total, mut panics) = (0u64, 0u64);
    for (name, t) in &tallies {
        println!(
            "{:<15} {:>9} {:>9} {:>9} {:>8} {:>7} {:>11.1} {:>9.0}",
            name,
            t.execs,
            t.accepted,
            t.rejected(),
            t.errors.len(),
            t.panics,
            t.slowest.as_secs_f64() * 1e3,
            t.execs as f64 / t.elapsed.as_secs_f64()
        );
        let mut by_count: Vec<(&String, &u64)> = t.errors.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let lines: String = by_count
            .iter()
            .map(|(m, c)| format!("{c:>9}  {m:?}\n"))
            .collect();
        std::fs::write(census.join(format!("{name}-errors.txt")), lines).expect("write census");
        let (input, note) = &t.slowest_input;
        std::fs::write(census.join(format!("{name}-slowest")), input).expect("write slowest");
        std::fs::write(
            census.join(format!("{name}-slowest.txt")),
            format!("{note}\n"),
        )
        .expect("write slowest");
        total += t.execs;
        panics += t.panics;
    }
    println!(
        "(distinct: error messages cut to 60 characters; each, counted, is in {}/<target>-errors.txt, the slowest input in <target>-slowest)",
        census.display()
    );
    println!("fuzz executions without a panic: {}", total - panics);
    if panics > 0 {
        eprintln!(
            "{panics} panics found; inputs and where they panicked are in {}",
            fz.crash_dir.display()
        );
        std::process::exit(1);
    }
}
