//! Running a launched job to its end, in whichever process runs it (this one or its
//! supervisor): the process and its namespaces, the fence and the services, the log with time
//! stamps and masking, the time limit and quotas, cancelling, the caches saved and the outputs
//! collected.

use super::*;

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
    // The secrets' values, from the environment the job is given (a supervisor's own).
    let secret_values: Vec<(String, String)> = launch
        .masked
        .iter()
        .filter_map(|name| match env {
            Some(env) => env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| (name.clone(), v.clone())),
            None => std::env::var(name).ok().map(|v| (name.clone(), v)),
        })
        .collect();
    let secret_files = SecretFiles::new(launch, &secret_values)?;
    let secret_fds = secret_files.fds();
    let mut cmd = Command::new(&launch.program);
    // The secrets' mounts go after the job's own (an image's root is bound at `/` and would
    // hide them), just before the command: before `--chdir`.
    let secret_args = secret_files.bwrap_args(&secret_values);
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
    let net = if launch.fenced_network || launch.open_network || !launch.services.is_empty() {
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
    match launch.args.iter().position(|a| a == "--chdir") {
        Some(at) if launch.sandboxed => {
            cmd.args(&launch.args[..at]);
            cmd.args(&secret_args);
            cmd.args(&launch.args[at..]);
        }
        _ => {
            cmd.args(&secret_args);
            cmd.args(&launch.args);
        }
    }
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
            for fd in &secret_fds {
                libc::fcntl(*fd, libc::F_SETFD, 0);
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
    // The job waits in its namespace until the fence is up and its services listen; no
    // fence or no services, no job.
    let services = &launch.services;
    let service_log = super::services::log_writer(log.clone());
    let service_procs = cgroup
        .as_ref()
        .and_then(|c| std::ffi::CString::new(c.procs().as_os_str().as_encoded_bytes()).ok());
    let set_up = net.map(|p| {
        p.start(launch.fenced_network, launch.open_network, |pid| {
            if services.is_empty() {
                Ok(None)
            } else {
                super::services::start(
                    services,
                    pid,
                    service_log,
                    launch.seccomp.as_deref(),
                    service_procs,
                )
                .map(Some)
            }
        })
    });
    let (_fence, running_services) = match set_up {
        None => (None, None),
        Some(Ok(made)) => made,
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
                reason: if services.is_empty() {
                    format!("its network could not be fenced: {e}")
                } else {
                    format!("its network or services could not be set up: {e}")
                },
            });
        }
    };
    let mask: Arc<Vec<String>> = Arc::new(secret_values.iter().map(|(_, v)| v.clone()).collect());
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
        let mask = mask.clone();
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
                    let text = text.trim_end_matches(['\n', '\r']);
                    if mask.is_empty() {
                        log_line(&log, text);
                    } else {
                        log_line(&log, &crate::secrets::mask(text, &mask));
                    }
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
    // Anything left in the group (daemons the job started) goes too, and its services.
    // SAFETY: signals our own child's process group.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    if let Some(s) = running_services {
        drop(s);
        log_line(&log, "seakeeper: services stopped");
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
    drop(secret_files);
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
    if state == JobState::Succeeded {
        for s in &launch.caches {
            let line =
                crate::executor::caches::save_line(&s.dir, &s.key, &launch.workspace, &s.cache);
            log_line(&log, &line);
        }
    }
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
