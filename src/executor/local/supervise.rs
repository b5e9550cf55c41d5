//! A job's supervision: the detached supervisor process (`seakeeper job supervise`) that
//! holds the job directory's lock, and how a job nobody holds is found lost and its leftover
//! processes killed.

use super::*;

/// A running job's process group and the session it is in (`group.json`). Together they name
/// the job's processes even after the process that started them is gone: a group never leaves
/// its session, and its number is not reused while any member lives.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(super) struct Group {
    pub(super) pgid: i32,
    pub(super) sid: i32,
}

/// How many live processes are in `group` (by `/proc/<pid>/stat`).
pub(super) fn group_members(group: Group) -> usize {
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
pub(super) fn kill_leftovers(dir: &Path) {
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

pub(super) fn lost() -> JobState {
    JobState::Lost {
        reason: "the seakeeper process that ran it stopped".into(),
    }
}

/// What versions before `JobState::Lost` wrote for a lost job (exactly this reason, no exit
/// code): read as lost, so a job lost across an upgrade still runs once more.
const LEGACY_LOST: &str = "lost: the seakeeper process that ran it stopped";

pub(super) fn read_state(dir: &Path) -> Result<Option<JobState>, ExecError> {
    let path = dir.join("state.json");
    match std::fs::read(&path) {
        Ok(b) => match serde_json::from_slice::<JobState>(&b) {
            Ok(JobState::Failed {
                exit_code: None,
                reason,
            }) if reason == LEGACY_LOST => Ok(Some(lost())),
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(backend(&path.display().to_string(), e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(backend(&path.display().to_string(), e)),
    }
}

/// Takes the job's lock file (released when the file is closed, even by a crash).
pub(super) fn hold_lock(dir: &Path) -> std::io::Result<std::fs::File> {
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
pub(super) fn held_elsewhere(dir: &Path) -> bool {
    matches!(hold_lock(dir), Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK))
}

/// Set by SIGTERM or SIGINT (a shutdown: the job is left to be found lost and run again).
pub(super) static SIGNALLED: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// A supervisor process's view of its job.
pub(super) struct Supervisor<'a> {
    pub(super) dir: &'a Path,
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

pub(super) fn log_line_to(dir: &Path, text: &str) {
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
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, SIGNALLED.clone())
            .map_err(|e| format!("installing a signal handler: {e}"))?;
    }
    // SAFETY: ignoring SIGHUP (the supervisor has no terminal) changes no memory.
    unsafe {
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
