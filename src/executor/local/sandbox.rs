//! Running a job's commands: the workspace prepared, the command line built (bubblewrap with
//! a read-only system and only its own workspace writable, or a bare shell), the time limit,
//! the live log, the quotas, and the outputs collected at the end.

use super::*;

/// Whether an environment variable changes how the C library loads programs or resolves
/// names (glibc's list of variables it drops for setuid programs): a job's own variables pass
/// through host processes (its supervisor, bubblewrap) before the sandbox, so these are refused.
pub(super) fn loader_variable(name: &str) -> bool {
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

pub(super) struct Run {
    pub(super) spec: JobSpec,
    pub(super) job: Arc<Job>,
    pub(super) prepare: Prepare,
    pub(super) bwrap: Option<PathBuf>,
    pub(super) store: PathBuf,
    pub(super) secrets: Vec<(String, String)>,
    pub(super) slots: Arc<Slots>,
    pub(super) supervisor: Option<PathBuf>,
    pub(super) limits: crate::executor::limits::JobLimits,
}

/// `/etc` entries a job may see (never shadow files, never seakeeper's own configuration).
pub(super) const ETC: &[&str] = &[
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
    pub limits: crate::executor::limits::JobLimits,
    /// The seccomp program bubblewrap installs (`--seccomp`), when sandboxed.
    #[serde(default)]
    pub seccomp: Option<PathBuf>,
    /// An untrusted job with the network: its own namespace, fenced (see
    /// [`crate::executor::netns`]), instead of the host's.
    #[serde(default)]
    pub fenced_network: bool,
}

/// Whoever watches a running job: asked whether to stop it, told when it starts.
pub(super) trait Supervision {
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
    pub(super) fn run(self) {
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
        super::outputs::place_inputs(&self.spec, &workspace, &self.store)?;
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
            crate::executor::netns::available()?;
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
                    let conf = crate::executor::netns::resolv_conf(&self.job.dir)?;
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
                        std::fs::write(&path, crate::executor::limits::seccomp_program())
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
pub(super) enum Ended {
    /// Recorded by its supervisor.
    Recorded(JobState),
    /// To be recorded.
    Unrecorded(JobState),
}

pub(super) fn log_line(log: &Mutex<std::fs::File>, text: &str) {
    let line = format!("{} {}\n", now_rfc3339(), text);
    let _ = log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .write_all(line.as_bytes());
}

/// Runs a launched job to its end: the log with timestamps, the time limit, cancelling, the
/// outputs. `env`: the job's whole environment (`None`: this process's own, in a supervisor).
pub(super) fn run_launch(
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
        Some(crate::executor::netns::Pipes::new()?)
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
    let cgroup = crate::executor::limits::PidsCgroup::create(&cgroup_name, launch.limits.pids);
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
    let _fence = match net.map(crate::executor::netns::Pipes::fence) {
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
            let size = crate::executor::limits::dir_size(&launch.workspace, limit);
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
pub(super) const WORKSPACE_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Whether this bubblewrap can forbid user namespaces inside the sandbox (0.8 and later).
pub(super) fn bwrap_can_disable_userns(bwrap: &Path) -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        Command::new(bwrap)
            .arg("--help")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--disable-userns"))
    })
}
