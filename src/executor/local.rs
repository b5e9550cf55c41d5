//! The local executor (the embedded default): each job gets a fresh workspace holding exactly
//! its commit, an environment holding only what it declares plus `SEAKEEPER_*`, bubblewrap
//! isolation when `bwrap` is installed (new namespaces, a read-only system, only its own
//! workspace writable, no network unless declared, no capabilities, dies with seakeeper), a
//! hard timeout that kills the whole process tree, a live log with timestamps, and outputs
//! copied into a content-addressed store. A concurrency limit queues the rest.
//!
//! A job runs either under a thread of this process (it dies with the process), or, with
//! [`LocalConfig::supervisor`] (what the daemon uses), under a detached supervisor process
//! (`seakeeper job supervise`, its own session) that owns the sandbox, the log, the time limit,
//! the outputs and the final state, and holds the job directory's lock. A seakeeper killed
//! while the job runs leaves it running; the next one finds the lock held, adopts the job and
//! reads its state from disk. A job is only *lost* (and recorded as failed) when no process
//! holds its lock and it has no final state: its supervisor died too, or the machine rebooted.
//! Whoever finds it lost kills what is left of its process group first (`group.json`).
//!
//! On disk, per job: `<state>/jobs/<build id>/<job>/` with `state.json`, `log` (one
//! `<RFC 3339 time> <line>` per line), `script.sh`, `outputs.json`, `workspace/`, `lock`,
//! `group.json` (the running job's process group and session), and for supervised jobs
//! `launch.json` (what the supervisor runs; the environment is passed to it
//! directly, never written) and `cancel` (created to ask the supervisor to stop the job).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{ExecError, Executor, LogLine, output_glob_matches, script, seakeeper_env};
use crate::model::{Digest, JobKey, JobSpec, JobState, OutputFile, Trust};

/// Prepares a job's workspace (writes exactly the commit's files into the directory).
pub type Prepare = Arc<dyn Fn(&JobSpec, &Path) -> Result<(), String> + Send + Sync>;

/// How jobs are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// bubblewrap if `bwrap` is on the PATH, otherwise none (with a warning).
    Auto,
    /// bubblewrap at this path.
    Bubblewrap(PathBuf),
    /// No isolation: the job runs as seakeeper's user, with the host's filesystem and network.
    None,
}

/// The local executor's settings.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Where jobs live (`jobs/` under it).
    pub state_dir: PathBuf,
    /// The content-addressed output store (`sha256/<hex>` under it).
    pub store_dir: PathBuf,
    /// How many jobs run at once; the rest wait.
    pub max_concurrent: usize,
    /// The isolation.
    pub sandbox: Sandbox,
    /// Secret values by name, for trusted jobs that declare them.
    pub secrets: BTreeMap<String, String>,
    /// The seakeeper binary to run each job under (`<it> job supervise`), detached, so jobs
    /// outlive this process and are adopted by the next; `None`: jobs run under a thread of
    /// this process and die with it.
    pub supervisor: Option<PathBuf>,
    /// What each job may consume.
    pub limits: super::limits::JobLimits,
}

impl LocalConfig {
    /// Defaults under `state_dir`: store at `state_dir/store`, as many jobs as CPUs, sandbox auto.
    pub fn new(state_dir: &Path) -> LocalConfig {
        LocalConfig {
            state_dir: state_dir.to_owned(),
            store_dir: state_dir.join("store"),
            max_concurrent: std::thread::available_parallelism().map_or(2, |n| n.get()),
            sandbox: Sandbox::Auto,
            secrets: BTreeMap::new(),
            supervisor: None,
            limits: super::limits::JobLimits::default(),
        }
    }
}

struct Job {
    dir: PathBuf,
    state: Mutex<JobState>,
    changed: Condvar,
    /// The process group of the running job (bwrap or sh).
    pgid: Mutex<Option<i32>>,
    cancelled: AtomicBool,
    /// Run by a process other than this one (a supervisor that outlived the seakeeper that
    /// started it): its state is read from disk.
    external: bool,
}

impl Job {
    fn new(dir: PathBuf, state: JobState, external: bool) -> Arc<Job> {
        Arc::new(Job {
            dir,
            state: Mutex::new(state),
            changed: Condvar::new(),
            pgid: Mutex::new(None),
            cancelled: AtomicBool::new(false),
            external,
        })
    }

    /// The job's state; for a job another process runs, read from disk (and recorded as lost
    /// when no process holds its lock and it never ended).
    fn current(&self) -> Result<JobState, ExecError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !self.external || state.is_final() {
            return Ok(state.clone());
        }
        let mut disk = read_state(&self.dir)?.unwrap_or(JobState::Pending);
        if !disk.is_final() && !held_elsewhere(&self.dir) {
            // The supervisor may have recorded the end and exited since the first read.
            disk = read_state(&self.dir)?.unwrap_or(JobState::Pending);
            if !disk.is_final() {
                kill_leftovers(&self.dir);
                disk = lost();
                write_atomic(
                    &self.dir.join("state.json"),
                    &serde_json::to_vec(&disk).expect("json"),
                )?;
            }
        }
        if disk.is_final() {
            self.changed.notify_all();
        }
        *state = disk.clone();
        Ok(disk)
    }
}

/// A running job's process group and the session it is in (`group.json`). Together they name
/// the job's processes even after the process that started them is gone: a group never leaves
/// its session, and its number is not reused while any member lives.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Group {
    pgid: i32,
    sid: i32,
}

/// How many live processes are in `group` (by `/proc/<pid>/stat`).
fn group_members(group: Group) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // "pid (comm) state ppid pgrp session ...": comm may hold anything, so split
            // after its last ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let f: Vec<&str> = rest.split_whitespace().take(4).collect();
            f.len() == 4
                && f[0] != "Z"
                && f[2].parse() == Ok(group.pgid)
                && f[3].parse() == Ok(group.sid)
        })
        .count()
}

/// Kills what a lost job left running: without a sandbox, a supervisor (or seakeeper) killed
/// with SIGKILL takes only the job's first process with it, and the processes it started would
/// run on beside the job's next attempt.
fn kill_leftovers(dir: &Path) {
    let Some(group) = std::fs::read(dir.join("group.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Group>(&b).ok())
    else {
        return;
    };
    if group.pgid <= 1 {
        return;
    }
    let n = group_members(group);
    if n > 0 {
        // SAFETY: signals a process group that still exists in the session that started the
        // job; only the job's processes can be in it.
        unsafe {
            libc::killpg(group.pgid, libc::SIGKILL);
        }
        log_line_to(
            dir,
            &format!("seakeeper: killed {n} process(es) the lost job left running"),
        );
    }
}

fn lost() -> JobState {
    JobState::Lost {
        reason: "the seakeeper process that ran it stopped".into(),
    }
}

fn read_state(dir: &Path) -> Result<Option<JobState>, ExecError> {
    let path = dir.join("state.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice::<JobState>(&b)
            .map(Some)
            .map_err(|e| backend(&path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(backend(&path.display().to_string(), e)),
    }
}

struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// The local executor.
pub struct LocalExecutor {
    config: LocalConfig,
    prepare: Prepare,
    bwrap: Option<PathBuf>,
    jobs: Mutex<HashMap<JobKey, Arc<Job>>>,
    slots: Arc<Slots>,
}

fn backend(context: &str, e: impl std::fmt::Display) -> ExecError {
    ExecError::Backend(format!("{context}: {e}"))
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExecError> {
    crate::store::write_durably(path, bytes).map_err(|e| backend(&path.display().to_string(), e))
}

impl LocalExecutor {
    /// An executor with `config`; `prepare` fills each job's workspace.
    pub fn new(config: LocalConfig, prepare: Prepare) -> Result<LocalExecutor, ExecError> {
        std::fs::create_dir_all(config.state_dir.join("jobs"))
            .map_err(|e| backend(&config.state_dir.display().to_string(), e))?;
        std::fs::create_dir_all(crate::store::blob_dir(&config.store_dir))
            .map_err(|e| backend(&config.store_dir.display().to_string(), e))?;
        let bwrap = match &config.sandbox {
            Sandbox::Auto => find_on_path("bwrap"),
            Sandbox::Bubblewrap(p) => Some(p.clone()),
            Sandbox::None => None,
        };
        let slots = Arc::new(Slots {
            free: Mutex::new(config.max_concurrent.max(1)),
            freed: Condvar::new(),
        });
        Ok(LocalExecutor {
            config,
            prepare,
            bwrap,
            jobs: Mutex::new(HashMap::new()),
            slots,
        })
    }

    /// Whether jobs are isolated with bubblewrap; when not, [`LocalExecutor::warning`] says so.
    pub fn isolated(&self) -> bool {
        self.bwrap.is_some()
    }

    /// The warning to show when jobs are not isolated.
    pub fn warning(&self) -> Option<&'static str> {
        (!self.isolated()).then_some(
            "bubblewrap (bwrap) is not installed: jobs run WITHOUT isolation, as this user, with \
             this machine's files and network (install the bubblewrap package)",
        )
    }

    fn job_dir(&self, key: &JobKey) -> PathBuf {
        self.config
            .state_dir
            .join("jobs")
            .join(key.build_id.as_str())
            .join(&key.job)
    }

    /// Job names become directory names: one non-empty path segment.
    fn check_key(key: &JobKey) -> Result<(), ExecError> {
        let j = &key.job;
        if j.is_empty()
            || j.len() > 128
            || j.contains('/')
            || j.starts_with('.')
            || j.contains('\0')
        {
            return Err(ExecError::Invalid {
                key: key.clone(),
                message: "a job name must be one path segment (no `/`, not starting with `.`)"
                    .into(),
            });
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobKey, Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A job known on disk but not in memory: ended (read its state), running under a
    /// supervisor that outlived the seakeeper that started it (adopted: its lock is held), or
    /// lost (no process holds its lock).
    fn load(&self, key: &JobKey) -> Result<Option<Arc<Job>>, ExecError> {
        Self::check_key(key)?;
        if let Some(j) = self.lock().get(key) {
            return Ok(Some(j.clone()));
        }
        let dir = self.job_dir(key);
        let Some(state) = read_state(&dir)? else {
            return Ok(None);
        };
        let job = if state.is_final() {
            Job::new(dir, state, false)
        } else if state == JobState::Pending
            && !dir.join("launch.json").exists()
            && !held_elsewhere(&dir)
        {
            // Accepted but never launched (queued, or checking out, when its seakeeper
            // stopped): nothing of it ran, so it is started afresh.
            return Ok(None);
        } else {
            // Another process (a supervisor, or another seakeeper sharing this state
            // directory) may be running it; `current` reads its state and finds it lost if not.
            let job = Job::new(dir, state, true);
            job.current()?;
            job
        };
        Ok(Some(self.lock().entry(key.clone()).or_insert(job).clone()))
    }

    fn get(&self, key: &JobKey) -> Result<Arc<Job>, ExecError> {
        self.load(key)?
            .ok_or_else(|| ExecError::Unknown(key.clone()))
    }
}

/// Whether an environment variable changes how the C library loads programs or resolves
/// names (glibc's list of variables it drops for setuid programs): a job's own variables pass
/// through host processes (its supervisor, bubblewrap) before the sandbox, so these are refused.
fn loader_variable(name: &str) -> bool {
    name.starts_with("LD_")
        || matches!(
            name,
            "GCONV_PATH"
                | "GETCONF_DIR"
                | "GLIBC_TUNABLES"
                | "HOSTALIASES"
                | "LOCALDOMAIN"
                | "LOCPATH"
                | "MALLOC_TRACE"
                | "NIS_PATH"
                | "NLSPATH"
                | "RESOLV_HOST_CONF"
                | "RES_OPTIONS"
                | "TZDIR"
        )
}

/// Moves a job to `state`, on disk then in memory, under the job's lock. A job that has
/// ended stays ended (a cancel during checkout must not become Running again).
/// Takes the job's lock file (released when the file is closed, even by a crash).
fn hold_lock(dir: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::io::AsRawFd as _;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// Whether a live process holds the job's lock.
fn held_elsewhere(dir: &Path) -> bool {
    matches!(hold_lock(dir), Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK))
}

fn set_state(job: &Job, state: JobState) -> bool {
    let mut current = job.state.lock().unwrap_or_else(|p| p.into_inner());
    if current.is_final() {
        return false;
    }
    let bytes = serde_json::to_vec(&state).expect("a state serializes");
    if let Err(e) = write_atomic(&job.dir.join("state.json"), &bytes) {
        crate::telemetry::warn(&format!("recording a job's state: {e}"));
    }
    *current = state;
    job.changed.notify_all();
    true
}

impl Executor for LocalExecutor {
    fn start(&self, spec: &JobSpec) -> Result<(), ExecError> {
        let key = spec.key();
        Self::check_key(&key)?;
        if spec.timeout_seconds == 0 || spec.timeout_seconds > 7 * 24 * 3600 {
            return Err(ExecError::Invalid {
                key,
                message: format!(
                    "a time limit of {} s: it must be between 1 s and 7 days",
                    spec.timeout_seconds
                ),
            });
        }
        if self.bwrap.is_none()
            && self.config.sandbox == Sandbox::Auto
            && spec.trust == Trust::Untrusted
        {
            return Err(ExecError::Invalid {
                key,
                message: "untrusted code needs isolation and bubblewrap (bwrap) is not \
                          installed: install bubblewrap, or choose to run without a sandbox \
                          (`seakeeper job run --no-sandbox` for your own code)"
                    .into(),
            });
        }
        if !spec.services.is_empty() {
            let names: Vec<&str> = spec.services.keys().map(String::as_str).collect();
            return Err(ExecError::Invalid {
                key,
                message: format!(
                    "services ({}) need containers, which the local executor does not run; \
                     use the Kubernetes executor (`seakeeper job render`) for this job",
                    names.join(", ")
                ),
            });
        }
        if let Some(name) = spec.env.keys().find(|k| loader_variable(k)) {
            return Err(ExecError::Invalid {
                key,
                message: format!(
                    "env: {name} changes how programs are loaded and would reach seakeeper's own \
                     processes outside the sandbox; set it in the job's commands instead \
                     (`export {name}=...`)"
                ),
            });
        }
        if spec.trust == Trust::Untrusted && !spec.secrets.is_empty() {
            return Err(ExecError::Invalid {
                key,
                message: "untrusted jobs get no secrets".into(),
            });
        }
        for s in &spec.secrets {
            if !self.config.secrets.contains_key(s) {
                return Err(ExecError::Invalid {
                    key,
                    message: format!("secret {s:?} is not available to this executor"),
                });
            }
        }
        let mut jobs = self.lock();
        if jobs.contains_key(&key) {
            return Ok(());
        }
        // Ended jobs leave memory (their state is on disk and is read again when asked for),
        // so a daemon that runs for months holds only the jobs that are running.
        jobs.retain(|_, j| !j.state.lock().unwrap_or_else(|p| p.into_inner()).is_final());
        drop(jobs);
        if self.load(&key)?.is_some() {
            return Ok(());
        }
        let dir = self.job_dir(&key);
        std::fs::create_dir_all(&dir).map_err(|e| backend(&dir.display().to_string(), e))?;
        let job = Job::new(dir, JobState::Pending, false);
        jobs = self.lock();
        if jobs.contains_key(&key) {
            return Ok(());
        }
        jobs.insert(key.clone(), job.clone());
        drop(jobs);
        set_state(&job, JobState::Pending);
        let run = Run {
            spec: spec.clone(),
            job,
            prepare: self.prepare.clone(),
            bwrap: self.bwrap.clone(),
            store: self.config.store_dir.clone(),
            secrets: spec
                .secrets
                .iter()
                .filter_map(|s| self.config.secrets.get(s).map(|v| (s.clone(), v.clone())))
                .collect(),
            slots: self.slots.clone(),
            supervisor: self.config.supervisor.clone(),
            limits: self.config.limits,
        };
        std::thread::Builder::new()
            .name(format!("job {key}"))
            .spawn(move || run.run())
            .map_err(|e| backend("starting the job thread", e))?;
        Ok(())
    }

    fn state(&self, key: &JobKey) -> Result<Option<JobState>, ExecError> {
        self.load(key)?.map(|j| j.current()).transpose()
    }

    fn wait(&self, key: &JobKey, timeout: Option<Duration>) -> Result<JobState, ExecError> {
        let job = self.get(key)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        if job.external {
            // Another process runs it: its state is on disk.
            loop {
                let state = job.current()?;
                if state.is_final() || deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(state);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut state = job.state.lock().unwrap_or_else(|p| p.into_inner());
        while !state.is_final() {
            match deadline {
                None => state = job.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    state = job
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        Ok(state.clone())
    }

    fn logs(
        &self,
        key: &JobKey,
        follow: bool,
        sink: &mut dyn FnMut(LogLine),
    ) -> Result<(), ExecError> {
        let job = self.get(key)?;
        let path = job.dir.join("log");
        let mut offset = 0u64;
        let mut partial = Vec::new();
        loop {
            let ended = job.current()?.is_final();
            if let Ok(f) = std::fs::File::open(&path) {
                use std::io::Seek as _;
                let mut reader = BufReader::new(f);
                reader
                    .seek(std::io::SeekFrom::Start(offset))
                    .map_err(|e| backend(&path.display().to_string(), e))?;
                // Line by line: a large log is never in memory whole.
                loop {
                    let n = reader
                        .read_until(b'\n', &mut partial)
                        .map_err(|e| backend(&path.display().to_string(), e))?;
                    if n == 0 || partial.last() != Some(&b'\n') {
                        // The end, or a line still being written: read it again next time.
                        partial.clear();
                        break;
                    }
                    offset += partial.len() as u64;
                    let line = String::from_utf8_lossy(&partial[..partial.len() - 1]);
                    let (time, text) = line.split_once(' ').unwrap_or(("", &line));
                    sink(LogLine {
                        time: time.to_owned(),
                        text: text.to_owned(),
                    });
                    partial.clear();
                }
            }
            if !follow || ended {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cancel(&self, key: &JobKey) -> Result<(), ExecError> {
        let job = self.get(key)?;
        job.cancelled.store(true, Ordering::SeqCst);
        if !job.current()?.is_final() {
            // A supervisor (of this process or an earlier one) watches for this file.
            let cancel = job.dir.join("cancel");
            std::fs::write(&cancel, b"").map_err(|e| backend(&cancel.display().to_string(), e))?;
        }
        if let Some(pgid) = *job.pgid.lock().unwrap_or_else(|p| p.into_inner()) {
            // SAFETY: killpg only sends a signal to a process group we created.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
        if !job.external {
            let state = job.state.lock().unwrap_or_else(|p| p.into_inner());
            if *state == JobState::Pending {
                drop(state);
                set_state(&job, JobState::Cancelled);
            }
        }
        self.wait(key, None).map(drop)
    }

    fn list(&self) -> Result<Vec<(JobKey, JobState)>, ExecError> {
        let root = self.config.state_dir.join("jobs");
        let mut out = Vec::new();
        let builds =
            std::fs::read_dir(&root).map_err(|e| backend(&root.display().to_string(), e))?;
        for b in builds.flatten() {
            let Some(build) = b
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<crate::model::BuildId>().ok())
            else {
                continue;
            };
            for j in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                let Some(name) = j.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let key = JobKey {
                    build_id: build.clone(),
                    job: name,
                };
                match self.state(&key) {
                    Ok(Some(state)) => out.push((key, state)),
                    Ok(None) => {}
                    Err(e) => crate::telemetry::warn(&format!("skipping job {key}: {e}")),
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn outputs(&self, key: &JobKey) -> Result<Vec<OutputFile>, ExecError> {
        let job = self.get(key)?;
        match std::fs::read(job.dir.join("outputs.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| backend("outputs.json", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(backend("outputs.json", e)),
        }
    }
}

struct Run {
    spec: JobSpec,
    job: Arc<Job>,
    prepare: Prepare,
    bwrap: Option<PathBuf>,
    store: PathBuf,
    secrets: Vec<(String, String)>,
    slots: Arc<Slots>,
    supervisor: Option<PathBuf>,
    limits: super::limits::JobLimits,
}

/// `/etc` entries a job may see (never shadow files, never seakeeper's own configuration).
const ETC: &[&str] = &[
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "passwd",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
];

/// What runs a job's commands, once its workspace is ready: the command line, the time limit
/// and the outputs to keep. Written to `launch.json` for a supervisor; the environment is
/// passed to the supervisor as its own, never written down.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Launch {
    /// The program (bwrap, or `/bin/sh` without a sandbox).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The directory to start in (without a sandbox; bwrap changes directory itself).
    pub cwd: Option<PathBuf>,
    /// Ask the kernel to kill the job when its parent dies (bwrap does this itself).
    pub die_with_parent: bool,
    /// Whether bwrap runs it (it reports a signal as 128 + the signal).
    pub sandboxed: bool,
    /// The time limit.
    pub timeout_seconds: u64,
    /// The workspace (outputs are collected from it).
    pub workspace: PathBuf,
    /// Output globs.
    pub outputs: Vec<String>,
    /// The content-addressed store.
    pub store: PathBuf,
    /// What the job may consume.
    #[serde(default)]
    pub limits: super::limits::JobLimits,
    /// The seccomp program bubblewrap installs (`--seccomp`), when sandboxed.
    #[serde(default)]
    pub seccomp: Option<PathBuf>,
    /// An untrusted job with the network: its own namespace, fenced (see
    /// [`super::netns`]), instead of the host's.
    #[serde(default)]
    pub fenced_network: bool,
}

/// Whoever watches a running job: asked whether to stop it, told when it starts.
trait Supervision {
    /// Whether the job should be stopped.
    fn cancelled(&self) -> bool;
    /// The job's process group started (`Some`) or ended (`None`); `false`: kill it at once.
    fn started(&self, pgid: Option<i32>) -> bool;
}

impl Supervision for Run {
    fn cancelled(&self) -> bool {
        self.job.cancelled.load(Ordering::SeqCst)
    }

    fn started(&self, pgid: Option<i32>) -> bool {
        *self.job.pgid.lock().unwrap_or_else(|p| p.into_inner()) = pgid;
        pgid.is_none() || (set_state(&self.job, JobState::Running) && !self.cancelled())
    }
}

impl Run {
    fn run(self) {
        // Wait for a slot.
        {
            let mut free = self.slots.free.lock().unwrap_or_else(|p| p.into_inner());
            while *free == 0 {
                free = self
                    .slots
                    .freed
                    .wait(free)
                    .unwrap_or_else(|p| p.into_inner());
            }
            *free -= 1;
        }
        // The slot is given back however this ends (even by a panic).
        struct SlotGuard(Arc<Slots>);
        impl Drop for SlotGuard {
            fn drop(&mut self) {
                *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                self.0.freed.notify_one();
            }
        }
        let _slot = SlotGuard(self.slots.clone());
        let state = if self.job.cancelled.load(Ordering::SeqCst) {
            JobState::Cancelled
        } else {
            match self.execute() {
                Ok(Ended::Recorded(s)) => {
                    // The supervisor wrote it to disk; this process only learns it.
                    let mut current = self.job.state.lock().unwrap_or_else(|p| p.into_inner());
                    *current = s;
                    self.job.changed.notify_all();
                    return;
                }
                Ok(Ended::Unrecorded(s)) => s,
                Err(reason) => JobState::Failed {
                    exit_code: None,
                    reason,
                },
            }
        };
        set_state(&self.job, state);
    }

    fn execute(&self) -> Result<Ended, String> {
        let dir = &self.job.dir;
        // Held while the job runs (by the supervisor once it starts): another process sharing
        // the state directory sees the job as running, not lost.
        let lock = hold_lock(dir).map_err(|e| format!("locking the job directory: {e}"))?;
        let workspace = dir.join("workspace");
        if workspace.exists() {
            std::fs::remove_dir_all(&workspace)
                .map_err(|e| format!("cleaning the workspace: {e}"))?;
        }
        std::fs::create_dir_all(&workspace).map_err(|e| format!("creating the workspace: {e}"))?;
        (self.prepare)(&self.spec, &workspace)
            .map_err(|e| format!("checking out {}: {e}", self.spec.commit))?;
        let script_path = dir.join("script.sh");
        std::fs::write(&script_path, script(&self.spec)).map_err(|e| format!("script: {e}"))?;
        let (launch, env) = self.launch(&workspace, &script_path)?;
        match &self.supervisor {
            None => run_launch(dir, &launch, Some(&env), self).map(Ended::Unrecorded),
            Some(program) => self.supervise(program, &launch, env, lock),
        }
    }

    /// The command line and environment of the job.
    fn launch(
        &self,
        workspace: &Path,
        script_path: &Path,
    ) -> Result<(Launch, Vec<(String, String)>), String> {
        let inside = if self.bwrap.is_some() {
            "/workspace".to_owned()
        } else {
            workspace.display().to_string()
        };
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("HOME".into(), inside.clone()),
            ("LANG".into(), "C.UTF-8".into()),
            ("TMPDIR".into(), "/tmp".into()),
        ];
        env.extend(self.spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(self.secrets.iter().cloned());
        env.extend(seakeeper_env(&self.spec, &inside));
        let text = |p: &Path| {
            p.to_str().map(str::to_owned).ok_or_else(|| {
                format!(
                    "{}: a path seakeeper runs jobs in must be UTF-8",
                    p.display()
                )
            })
        };
        let fenced_network =
            self.bwrap.is_some() && self.spec.network && self.spec.trust == Trust::Untrusted;
        if fenced_network {
            super::netns::available()?;
        }
        let mut args: Vec<String> = Vec::new();
        let (program, cwd) = match &self.bwrap {
            Some(bwrap) => {
                args.extend(
                    [
                        "--unshare-all",
                        "--unshare-user",
                        "--uid",
                        "65534",
                        "--gid",
                        "65534",
                    ]
                    .map(str::to_owned),
                );
                // A trusted job with the network shares the host's; an untrusted one gets a
                // fenced namespace of its own (set up when it starts).
                if self.spec.network && self.spec.trust == Trust::Trusted {
                    args.push("--share-net".into());
                }
                args.extend(
                    ["--die-with-parent", "--new-session", "--cap-drop", "ALL"].map(str::to_owned),
                );
                if bwrap_can_disable_userns(bwrap) {
                    args.push("--disable-userns".into());
                }
                args.extend(["--hostname", "seakeeper-job"].map(str::to_owned));
                args.extend(["--ro-bind", "/usr", "/usr"].map(str::to_owned));
                for d in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
                    let p = Path::new("/").join(d);
                    match std::fs::read_link(&p) {
                        Ok(target) => {
                            args.extend(["--symlink".into(), text(&target)?, text(&p)?]);
                        }
                        Err(_) if p.is_dir() => {
                            args.extend(["--ro-bind".into(), text(&p)?, text(&p)?]);
                        }
                        Err(_) => {}
                    }
                }
                for e in ETC {
                    let p = format!("/etc/{e}");
                    args.extend(["--ro-bind-try".into(), p.clone(), p]);
                }
                if fenced_network {
                    let conf = super::netns::resolv_conf(&self.job.dir)?;
                    args.extend(["--ro-bind".into(), text(&conf)?, "/etc/resolv.conf".into()]);
                }
                args.extend(["--proc", "/proc", "--dev", "/dev"].map(str::to_owned));
                args.extend([
                    "--size".into(),
                    (2u64 << 30).to_string(),
                    "--tmpfs".into(),
                    "/tmp".into(),
                ]);
                args.extend(["--bind".into(), text(workspace)?, "/workspace".into()]);
                args.extend([
                    "--ro-bind".into(),
                    text(script_path)?,
                    "/seakeeper/script.sh".into(),
                ]);
                args.extend(
                    [
                        "--chdir",
                        "/workspace",
                        "--",
                        "/bin/sh",
                        "-e",
                        "/seakeeper/script.sh",
                    ]
                    .map(str::to_owned),
                );
                (bwrap.clone(), None)
            }
            None => {
                args.extend(["-e".into(), text(script_path)?]);
                (PathBuf::from("/bin/sh"), Some(workspace.to_owned()))
            }
        };
        Ok((
            Launch {
                program,
                args,
                cwd,
                die_with_parent: self.bwrap.is_none(),
                sandboxed: self.bwrap.is_some(),
                timeout_seconds: self.spec.timeout_seconds,
                workspace: workspace.to_owned(),
                outputs: self.spec.outputs.clone(),
                store: self.store.clone(),
                limits: self.limits,
                seccomp: match &self.bwrap {
                    Some(_) => {
                        let path = self.job.dir.join("seccomp.bpf");
                        std::fs::write(&path, super::limits::seccomp_program())
                            .map_err(|e| format!("writing the seccomp filter: {e}"))?;
                        Some(path)
                    }
                    None => None,
                },
                fenced_network,
            },
            env,
        ))
    }

    /// Hands the job to a detached supervisor process (its own session, holding the job's
    /// lock through an inherited descriptor) and waits for it.
    fn supervise(
        &self,
        program: &Path,
        launch: &Launch,
        env: Vec<(String, String)>,
        lock: std::fs::File,
    ) -> Result<Ended, String> {
        use std::os::unix::io::AsRawFd as _;
        let dir = &self.job.dir;
        write_atomic(
            &dir.join("launch.json"),
            &serde_json::to_vec_pretty(launch).expect("json"),
        )
        .map_err(|e| e.to_string())?;
        let now = self.job.current().map_err(|e| e.to_string())?;
        if now.is_final() {
            // Cancelled while it was being prepared (recorded by `cancel`).
            return Ok(Ended::Recorded(now));
        }
        // What the supervisor itself has to say (it cannot start, a bad launch.json).
        let errors = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("supervisor.log"))
            .map_err(|e| format!("supervisor.log: {e}"))?;
        let fd = lock.as_raw_fd();
        let mut cmd = Command::new(program);
        cmd.args(["job", "supervise", "--lock-fd", &fd.to_string()])
            .arg(dir)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errors);
        // SAFETY: setsid and fcntl are async-signal-safe; the descriptor is the child's copy.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 || libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting the job's supervisor {}: {e}", program.display()))?;
        // The supervisor's copy of the descriptor keeps the lock.
        drop(lock);
        {
            // From here the supervisor records the state; a cancel goes through `cancel`.
            let mut state = self.job.state.lock().unwrap_or_else(|p| p.into_inner());
            if !state.is_final() {
                *state = JobState::Running;
            }
        }
        let status = child
            .wait()
            .map_err(|e| format!("waiting for the job's supervisor: {e}"))?;
        match read_state(dir) {
            Ok(Some(s)) if s.is_final() => Ok(Ended::Recorded(s)),
            // Killed, or stopped by a signal (a shutdown): the job died with it and may have
            // run partly, so it is lost (and run once more), never silently passed or failed.
            Ok(_) => {
                log_line_to(
                    dir,
                    &format!("seakeeper: the job's supervisor ended ({status}) before the job did"),
                );
                kill_leftovers(dir);
                Ok(Ended::Unrecorded(lost()))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// How a job ended, and whether that is already on disk.
enum Ended {
    /// Recorded by its supervisor.
    Recorded(JobState),
    /// To be recorded.
    Unrecorded(JobState),
}

fn log_line(log: &Mutex<std::fs::File>, text: &str) {
    let line = format!("{} {}\n", now_rfc3339(), text);
    let _ = log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .write_all(line.as_bytes());
}

/// Runs a launched job to its end: the log with timestamps, the time limit, cancelling, the
/// outputs. `env`: the job's whole environment (`None`: this process's own, in a supervisor).
fn run_launch(
    dir: &Path,
    launch: &Launch,
    env: Option<&[(String, String)]>,
    watch: &dyn Supervision,
) -> Result<JobState, String> {
    let log = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log"))
            .map_err(|e| format!("opening the log: {e}"))?,
    ));
    let mut cmd = Command::new(&launch.program);
    // The seccomp filter goes to bubblewrap through a descriptor the job inherits.
    let seccomp = match &launch.seccomp {
        Some(path) => {
            Some(std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let seccomp_fd = seccomp.as_ref().map(std::os::unix::io::AsRawFd::as_raw_fd);
    if let Some(fd) = seccomp_fd {
        cmd.args(["--seccomp".to_owned(), fd.to_string()]);
    }
    let net = if launch.fenced_network {
        Some(super::netns::Pipes::new()?)
    } else {
        None
    };
    let net_fds = net
        .as_ref()
        .map(|p| (p.info_w.as_raw_fd(), p.block_r.as_raw_fd()));
    if let Some(p) = &net {
        cmd.args(p.args());
    }
    cmd.args(&launch.args);
    if let Some(cwd) = &launch.cwd {
        cmd.current_dir(cwd);
    }
    // A pids cgroup of its own, where the machine lets seakeeper make one.
    let cgroup_name = format!(
        "job-{}-{}",
        std::process::id(),
        dir.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    let cgroup = super::limits::PidsCgroup::create(&cgroup_name, launch.limits.pids);
    match &cgroup {
        Some(_) => {}
        None => log_line(
            &log,
            "seakeeper: no pids limit for this job (no writable pids cgroup on this machine)",
        ),
    }
    let cgroup_procs = cgroup
        .as_ref()
        .and_then(|c| std::ffi::CString::new(c.procs().as_os_str().as_encoded_bytes()).ok());
    let die_with_parent = launch.die_with_parent;
    // SAFETY: prctl, signal, fcntl, open, write and close are async-signal-safe, and the
    // strings they use were made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // A supervisor ignores SIGHUP; the job gets the default back.
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            if die_with_parent {
                // Only asks for SIGKILL when the parent dies.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            }
            if let Some(fd) = seccomp_fd {
                libc::fcntl(fd, libc::F_SETFD, 0);
            }
            if let Some((info, block)) = net_fds {
                libc::fcntl(info, libc::F_SETFD, 0);
                libc::fcntl(block, libc::F_SETFD, 0);
            }
            if let Some(procs) = &cgroup_procs {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::other("entering the job's pids cgroup"));
                }
                libc::close(fd);
            }
            Ok(())
        });
    }
    if let Some(env) = env {
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    if watch.cancelled() {
        return Ok(JobState::Cancelled);
    }
    let mut child = cmd.spawn().map_err(|e| format!("starting the job: {e}"))?;
    let pgid = child.id() as i32;
    // What names the job's processes if this process dies before them (see `kill_leftovers`).
    let group = Group {
        pgid,
        // SAFETY: getsid(0) only reads this process's session id.
        sid: unsafe { libc::getsid(0) },
    };
    // Not synced: after a crash of the machine the processes are gone too.
    let tmp = dir.join("group.json.tmp");
    if let Err(e) = std::fs::write(&tmp, serde_json::to_vec(&group).expect("json"))
        .and_then(|()| std::fs::rename(&tmp, dir.join("group.json")))
    {
        log_line(
            &log,
            &format!("seakeeper: recording the job's process group: {e}"),
        );
    }
    if !watch.started(Some(pgid)) {
        // Cancelled while starting.
        // SAFETY: signals our own child's process group.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
    // The job waits in its namespace until the fence is up; no fence, no job.
    let _fence = match net.map(super::netns::Pipes::fence) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            // SAFETY: signals our own child's process group.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
            let _ = child.wait();
            watch.started(None);
            log_line(&log, &format!("seakeeper: {e}; the job did not run"));
            let _ = std::fs::remove_dir_all(&launch.workspace);
            return Ok(JobState::Failed {
                exit_code: None,
                reason: format!("its network could not be fenced: {e}"),
            });
        }
    };
    let cap = launch.limits.log_bytes;
    let logged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|r| {
        let log = log.clone();
        let logged = logged.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _done = done_tx;
            let mut reader = BufReader::new(r);
            let mut buf = Vec::new();
            // Lines are cut at 64 KiB, so a job printing without newlines cannot exhaust memory.
            while (&mut reader)
                .take(64 << 10)
                .read_until(b'\n', &mut buf)
                .unwrap_or(0)
                > 0
            {
                // Past the cap the job goes on, its output is read and dropped, and the log
                // says once where it was cut.
                let before = logged.fetch_add(buf.len() as u64, Ordering::SeqCst);
                if before < cap {
                    let text = String::from_utf8_lossy(&buf);
                    log_line(&log, text.trim_end_matches(['\n', '\r']));
                    if before + buf.len() as u64 >= cap {
                        log_line(
                            &log,
                            &format!(
                                "seakeeper: the log is cut here, past {cap} bytes; the job goes on \
                                 and its exit status still counts"
                            ),
                        );
                    }
                }
                buf.clear();
            }
        });
        done_rx
    })
    .collect();
    let deadline = started
        .checked_add(Duration::from_secs(launch.timeout_seconds))
        .unwrap_or(started + Duration::from_secs(7 * 24 * 3600));
    let mut timed_out = false;
    let mut killed = false;
    let mut over_quota: Option<u64> = None;
    let mut last_measured = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for the job: {e}")),
        }
        let late = Instant::now() >= deadline;
        // The workspace is measured every few seconds (a walk of its tree).
        if !killed && last_measured.elapsed() >= WORKSPACE_CHECK_EVERY {
            last_measured = Instant::now();
            let limit = launch.limits.workspace_bytes;
            let size = super::limits::dir_size(&launch.workspace, limit);
            if size > limit {
                over_quota = Some(size);
            }
        }
        if !killed && (late || watch.cancelled() || over_quota.is_some()) {
            killed = true;
            timed_out = late;
            // SAFETY: signals our own child's process group.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Anything left in the group (daemons the job started) goes too.
    // SAFETY: signals our own child's process group.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    watch.started(None);
    // A process that escaped the group may still hold the pipes: wait for the readers a
    // little, not forever.
    let until = Instant::now() + Duration::from_secs(2);
    for r in readers {
        let _ = r.recv_timeout(until.saturating_duration_since(Instant::now()));
    }
    let elapsed = started.elapsed();
    drop(seccomp);
    drop(cgroup);
    let state = if watch.cancelled() {
        JobState::Cancelled
    } else if timed_out {
        JobState::TimedOut
    } else if let Some(size) = over_quota {
        JobState::Failed {
            exit_code: None,
            reason: format!(
                "stopped: the workspace grew past its limit of {} bytes (at least {size})",
                launch.limits.workspace_bytes
            ),
        }
    } else {
        use std::os::unix::process::ExitStatusExt as _;
        match (status.code(), status.signal()) {
            (Some(0), _) => JobState::Succeeded,
            // bubblewrap reports a job killed by a signal as 128 + the signal.
            (Some(c), _) if launch.sandboxed && c > 128 && c < 160 => JobState::Failed {
                exit_code: Some(c),
                reason: format!("killed by signal {}", c - 128),
            },
            (Some(c), _) => JobState::Failed {
                exit_code: Some(c),
                reason: format!("exited with {c}"),
            },
            (None, Some(s)) => JobState::Failed {
                exit_code: None,
                reason: format!("killed by signal {s}"),
            },
            _ => JobState::Failed {
                exit_code: None,
                reason: "ended without a status".into(),
            },
        }
    };
    let summary = match &state {
        JobState::TimedOut => format!(
            "seakeeper: killed at the time limit of {} s",
            launch.timeout_seconds
        ),
        s => format!(
            "seakeeper: {} after {:.1} s",
            serde_json::to_value(s).expect("json")["state"]
                .as_str()
                .unwrap_or("ended"),
            elapsed.as_secs_f64()
        ),
    };
    log_line(&log, &summary);
    let outputs = match over_quota {
        // Nothing of an oversized workspace is kept.
        Some(_) => Vec::new(),
        None => collect_outputs(&launch.workspace, &launch.outputs, &launch.store)?,
    };
    write_atomic(
        &dir.join("outputs.json"),
        &serde_json::to_vec_pretty(&outputs).expect("json"),
    )
    .map_err(|e| e.to_string())?;
    // The outputs are in the store: the workspace goes (a job's files never outlive it).
    if let Err(e) = std::fs::remove_dir_all(&launch.workspace) {
        log_line(&log, &format!("seakeeper: removing the workspace: {e}"));
    }
    Ok(state)
}

/// How often a running job's workspace is measured against its quota.
const WORKSPACE_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Whether this bubblewrap can forbid user namespaces inside the sandbox (0.8 and later).
fn bwrap_can_disable_userns(bwrap: &Path) -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        Command::new(bwrap)
            .arg("--help")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--disable-userns"))
    })
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// A supervisor process's view of its job.
struct Supervisor<'a> {
    dir: &'a Path,
}

impl Supervision for Supervisor<'_> {
    fn cancelled(&self) -> bool {
        SIGNALLED.load(Ordering::SeqCst) || self.dir.join("cancel").exists()
    }

    fn started(&self, pgid: Option<i32>) -> bool {
        if pgid.is_none() {
            return true;
        }
        if let Err(e) = write_atomic(
            &self.dir.join("state.json"),
            &serde_json::to_vec(&JobState::Running).expect("json"),
        ) {
            log_line_to(
                self.dir,
                &format!("seakeeper: recording the job's start: {e}"),
            );
        }
        !self.cancelled()
    }
}

fn log_line_to(dir: &Path, text: &str) {
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
    {
        log_line(&Mutex::new(f), text);
    }
}

/// `seakeeper job supervise`: runs the job prepared in `dir` (its `launch.json`, with this
/// process's environment), records its end in `state.json`, and returns. `lock_fd`: the job
/// lock handed down by the seakeeper that started it (else it is taken here). SIGTERM, SIGINT
/// or a `cancel` file in `dir` stop the job as cancelled.
pub fn supervise(dir: &Path, lock_fd: Option<i32>) -> Result<JobState, String> {
    use std::os::unix::io::FromRawFd as _;
    let _lock = match lock_fd {
        Some(fd) => {
            // SAFETY: fcntl on a descriptor number; it fails cleanly if it is not open.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
                return Err(format!(
                    "--lock-fd {fd}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            // SAFETY: the descriptor is open (checked above) and only owned here.
            unsafe { std::fs::File::from_raw_fd(fd) }
        }
        None => hold_lock(dir).map_err(|e| {
            format!(
                "{}: the job is locked by another process ({e})",
                dir.display()
            )
        })?,
    };
    let path = dir.join("launch.json");
    let launch: Launch = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(l) => l,
        Err(e) => {
            // The lock is ours: the job ends here, with the reason, rather than being lost.
            let reason = format!("{}: {e}", path.display());
            let failed = JobState::Failed {
                exit_code: None,
                reason: reason.clone(),
            };
            log_line_to(dir, &format!("seakeeper: {reason}"));
            let _ = write_atomic(
                &dir.join("state.json"),
                &serde_json::to_vec(&failed).expect("json"),
            );
            return Err(reason);
        }
    };
    // SAFETY: the handler only stores to an atomic; SIGHUP is ignored (no terminal).
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let watch = Supervisor { dir };
    let state = if watch.cancelled() {
        JobState::Cancelled
    } else {
        run_launch(dir, &launch, None, &watch).unwrap_or_else(|reason| {
            log_line_to(dir, &format!("seakeeper: {reason}"));
            JobState::Failed {
                exit_code: None,
                reason,
            }
        })
    };
    if SIGNALLED.load(Ordering::SeqCst) {
        // A shutdown, not a decision about the job: it is left without an end, so whoever
        // looks next finds it lost and runs it again.
        log_line_to(
            dir,
            "seakeeper: the supervisor was stopped by a signal; the job will run again",
        );
        return Ok(lost());
    }
    write_atomic(
        &dir.join("state.json"),
        &serde_json::to_vec(&state).expect("json"),
    )
    .map_err(|e| e.to_string())?;
    Ok(state)
}

/// Copies the files matching `globs` into the store (by SHA-256) and lists them. Symlinks are
/// never followed.
pub fn collect_outputs(
    workspace: &Path,
    globs: &[String],
    store: &Path,
) -> Result<Vec<OutputFile>, String> {
    use sha2::Digest as _;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(crate::store::blob_dir(store))
        .map_err(|e| format!("{}: {e}", store.display()))?;
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::io::AsRawFd as _;
    // Every directory and file is opened relative to its parent's open descriptor, never
    // following a symlink, so a job that swaps a path for a symlink (to /proc/self/environ,
    // to the store) cannot make seakeeper read or write outside the workspace.
    let open_dir = |path: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
            .open(path)
    };
    let via = |dir: &std::fs::File| PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut out = Vec::new();
    let root = open_dir(workspace).map_err(|e| format!("{}: {e}", workspace.display()))?;
    let mut stack: Vec<(std::fs::File, String)> = vec![(root, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(via(&dir)).map_err(|e| format!("{prefix}: {e}"))?;
        for e in entries.flatten() {
            let ft = match e.file_type() {
                Ok(t) => t,
                Err(_) => continue,
            };
            let name = e.file_name();
            let rel = if prefix.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{prefix}/{}", name.to_string_lossy())
            };
            if ft.is_dir() {
                if let Ok(d) = open_dir(&via(&dir).join(&name)) {
                    stack.push((d, rel));
                }
                continue;
            }
            if !ft.is_file() || !globs.iter().any(|g| output_glob_matches(g, &rel)) {
                continue;
            }
            let bytes = {
                use std::io::Read as _;
                let Ok(mut f) = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(via(&dir).join(&name))
                else {
                    continue;
                };
                if !f.metadata().map_err(|e| format!("{rel}: {e}"))?.is_file() {
                    continue;
                }
                let mut b = Vec::new();
                f.read_to_end(&mut b).map_err(|e| format!("{rel}: {e}"))?;
                b
            };
            let hex = hex::encode(sha2::Sha256::digest(&bytes));
            let target = crate::store::blob_dir(store).join(&hex);
            if target.exists() {
                crate::store::touch(&target);
            } else {
                static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let tmp = crate::store::blob_dir(store).join(format!(
                    ".{hex}.{}.{}.tmp",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&tmp, &bytes)
                    .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                    .and_then(|()| std::fs::rename(&tmp, &target))
                    .map_err(|e| format!("storing {rel}: {e}"))?;
            }
            let executable = std::fs::symlink_metadata(via(&dir).join(&name))
                .map(|m| m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            out.push(OutputFile {
                path: rel,
                digest: Digest::of(&bytes),
                size: bytes.len() as u64,
                executable,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
