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

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{ExecError, Executor, LogLine, output_glob_matches, script, seakeeper_env};
use crate::model::{JobKey, JobSpec, JobState, OutputFile, Trust};

mod image;
mod outputs;
mod running;
mod sandbox;
mod secret_files;
mod services;
mod supervise;

pub use image::{DEFAULT_PATH, Images, Rootfs};
pub use outputs::{collect_outputs, place_inputs};
use running::*;
pub use sandbox::Launch;
use sandbox::*;
use secret_files::{SECRETS_DIR, SecretFiles};
pub use supervise::supervise;
use supervise::*;

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
#[derive(Clone)]
pub struct LocalConfig {
    /// Where jobs live (`jobs/` under it).
    pub state_dir: PathBuf,
    /// The content-addressed output store (`sha256/<hex>` under it).
    pub store_dir: PathBuf,
    /// How many jobs run at once; the rest wait.
    pub max_concurrent: usize,
    /// The isolation.
    pub sandbox: Sandbox,
    /// Where trusted jobs get the values of the secrets they name, asked as each job
    /// starts (values are masked as `***` in the job's log before it is written).
    pub secrets: Arc<dyn crate::secrets::SecretSource>,
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
            secrets: Arc::new(crate::secrets::FixedSecrets::none()),
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
    /// Makes each job's image ready; `None`: jobs run with the host's tools.
    images: Option<Images>,
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
            images: None,
        })
    }

    /// Runs each job in its own image, made ready by `images` (pulled by digest, unpacked
    /// once): what CI runs. Without this, jobs run with the host's tools (`--host-tools`).
    pub fn with_images(mut self, images: Images) -> LocalExecutor {
        self.images = Some(images);
        self
    }

    /// Whether jobs run in their images.
    pub fn runs_images(&self) -> bool {
        self.images.is_some()
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

/// Moves a job to `state`, on disk then in memory, under the job's lock. A job that has
/// ended stays ended (a cancel during checkout must not become Running again).
fn set_state(job: &Job, state: JobState) -> bool {
    let mut current = job.state.lock().unwrap_or_else(|p| p.into_inner());
    if current.is_final() {
        return false;
    }
    let bytes = serde_json::to_vec(&state).expect("a state serializes");
    if let Err(e) = write_atomic(&job.dir.join("state.json"), &bytes) {
        tracing::warn!("recording a job's state: {e}");
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
            let why = if self.images.is_none() || self.bwrap.is_none() {
                Some(
                    "run from their images, which needs bubblewrap and not --host-tools".to_owned(),
                )
            } else {
                services::can_join().err()
            };
            if let Some(why) = why {
                return Err(ExecError::Invalid {
                    key,
                    message: format!("services ({}): {why}", names.join(", ")),
                });
            }
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
        // Refused before anything runs: an untrusted job naming a secret, a secret the
        // source does not have or whose policy does not allow this job.
        crate::secrets::refuse_untrusted(spec).map_err(|message| ExecError::Invalid {
            key: key.clone(),
            message,
        })?;
        let secrets = if spec.secrets.is_empty() {
            Vec::new()
        } else {
            self.config
                .secrets
                .for_job(spec)
                .map_err(|message| ExecError::Invalid {
                    key: key.clone(),
                    message,
                })?
        };
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
            secrets: secrets
                .into_iter()
                .map(|(name, value)| (name, value.expose().to_owned()))
                .collect(),
            slots: self.slots.clone(),
            supervisor: self.config.supervisor.clone(),
            limits: self.config.limits,
            images: self.images.clone(),
            caches: self.config.state_dir.join("caches"),
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
                    Err(e) => tracing::warn!("skipping job {key}: {e}"),
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
