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
    /// Makes the job's image ready; `None`: the host's tools (`--host-tools`).
    pub(super) images: Option<super::image::Images>,
    /// Where dependency caches are kept (a directory per trust level under it).
    pub(super) caches: PathBuf,
}

/// A cache to save when the job succeeds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CacheSave {
    /// The cache.
    pub cache: crate::model::CacheSpec,
    /// Its key, from the workspace before the job ran.
    pub key: String,
    /// Its trust level's directory.
    pub dir: PathBuf,
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
    /// A trusted job with the network and services: a namespace of its own (its services
    /// must not listen on the host's) reaching out through `slirp4netns`, not fenced.
    #[serde(default)]
    pub open_network: bool,
    /// The job's services, started in its network namespace before it runs.
    #[serde(default)]
    pub services: Vec<super::services::ServiceLaunch>,
    /// The dependency caches to save if it succeeds.
    #[serde(default)]
    pub caches: Vec<CacheSave>,
    /// The environment variables that hold secrets: their values are masked as `***` in
    /// every line of the log before it is written (the names only; values are never written).
    #[serde(default)]
    pub masked: Vec<String>,
    /// Without a sandbox: the directory on a tmpfs (`/dev/shm`) where the secrets are written
    /// as files while the job runs (with bwrap they are at `/run/secrets` inside it).
    #[serde(default)]
    pub secrets_dir: Option<PathBuf>,
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
            // A bug on the way (a panic) fails the job instead of leaving it running forever.
            let executed =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.execute()))
                    .unwrap_or_else(|_| {
                        Err("seakeeper failed while running it (a bug; see its log)".into())
                    });
            match executed {
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
        super::outputs::place_inputs(&self.spec.inputs, &workspace, &self.store)?;
        let saves = self.restore_caches(&workspace);
        let script_path = dir.join("script.sh");
        std::fs::write(&script_path, script(&self.spec)).map_err(|e| format!("script: {e}"))?;
        let rootfs = match &self.images {
            None => None,
            Some(images) => {
                if self.bwrap.is_none() {
                    return Err(format!(
                        "running in its image {} needs bubblewrap (bwrap), which is not \
                         available; install it, or run with the host's tools (--host-tools)",
                        self.spec.image
                    ));
                }
                let began = Instant::now();
                let r = images(&self.spec.image, self.spec.trust)
                    .map_err(|e| format!("its image {}: {e}", self.spec.image))?;
                log_line_to(
                    dir,
                    &format!(
                        "seakeeper: image {} ready in {:.1} s",
                        self.spec.image,
                        began.elapsed().as_secs_f64()
                    ),
                );
                Some(r)
            }
        };
        let (mut launch, env) = self.launch(&workspace, &script_path, rootfs.as_ref())?;
        launch.caches = saves;
        match &self.supervisor {
            None => run_launch(dir, &launch, Some(&env), self).map(Ended::Unrecorded),
            Some(program) => self.supervise(program, &launch, env, lock),
        }
    }

    /// Restores the job's caches into its workspace (a cache that cannot be used is logged
    /// and skipped, never a reason to fail); returns what to save if it succeeds.
    fn restore_caches(&self, workspace: &Path) -> Vec<CacheSave> {
        use crate::executor::caches;
        let dir = self.caches.join(self.spec.trust.as_str());
        caches::restore_all(
            &caches::identity(&self.spec),
            &dir,
            workspace,
            &self.spec.caches,
            &mut |l| log_line_to(&self.job.dir, l),
        )
        .into_iter()
        .map(|(cache, key)| CacheSave {
            cache,
            key,
            dir: dir.clone(),
        })
        .collect()
    }

    /// The command line and environment of the job.
    fn launch(
        &self,
        workspace: &Path,
        script_path: &Path,
        rootfs: Option<&super::image::Rootfs>,
    ) -> Result<(Launch, Vec<(String, String)>), String> {
        let inside = if self.bwrap.is_some() {
            "/workspace".to_owned()
        } else {
            workspace.display().to_string()
        };
        let mut env: Vec<(String, String)> = match rootfs {
            Some(r) => super::image::environment(r),
            None => vec![
                ("PATH".into(), super::image::DEFAULT_PATH.into()),
                ("HOME".into(), inside.clone()),
                ("LANG".into(), "C.UTF-8".into()),
                ("TMPDIR".into(), "/tmp".into()),
            ],
        };
        env.extend(self.spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(self.secrets.iter().cloned());
        env.extend(seakeeper_env(&self.spec, &inside));
        // The secrets are also files, on a tmpfs: `/run/secrets/<NAME>` in the sandbox, a
        // directory of `/dev/shm` without one (removed when the job ends).
        let secrets_dir = (!self.secrets.is_empty() && self.bwrap.is_none()).then(|| {
            use sha2::Digest as _;
            let hash = hex::encode(
                &sha2::Sha256::digest(self.job.dir.as_os_str().as_encoded_bytes())[..8],
            );
            PathBuf::from(format!("/dev/shm/seakeeper-secrets-{hash}"))
        });
        if !self.secrets.is_empty() {
            let shown = match &secrets_dir {
                Some(d) => d.display().to_string(),
                None => SECRETS_DIR.to_owned(),
            };
            env.push(("SEAKEEPER_SECRETS_DIR".to_owned(), shown));
        }
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
        let with_services = rootfs.is_some() && !self.spec.services.is_empty();
        let open_network = self.bwrap.is_some()
            && self.spec.network
            && self.spec.trust == Trust::Trusted
            && with_services;
        if fenced_network || open_network {
            crate::executor::netns::available()?;
        }
        let mut args: Vec<String> = Vec::new();
        let (program, cwd) = match &self.bwrap {
            Some(bwrap) => {
                let (uid, gid) = rootfs.map_or((65534, 65534), |r| (r.uid, r.gid));
                args.extend(["--unshare-all", "--unshare-user"].map(str::to_owned));
                args.extend([
                    "--uid".into(),
                    uid.to_string(),
                    "--gid".into(),
                    gid.to_string(),
                ]);
                // A trusted job with the network shares the host's; an untrusted one gets a
                // fenced namespace of its own (set up when it starts).
                if self.spec.network && self.spec.trust == Trust::Trusted && !open_network {
                    args.push("--share-net".into());
                }
                args.extend(
                    ["--die-with-parent", "--new-session", "--cap-drop", "ALL"].map(str::to_owned),
                );
                if bwrap_can_disable_userns(bwrap) {
                    args.push("--disable-userns".into());
                }
                args.extend(["--hostname", "seakeeper-job"].map(str::to_owned));
                if let Some(r) = rootfs {
                    let hosts = self.job.dir.join("hosts");
                    std::fs::write(
                        &hosts,
                        super::image::hosts_file(self.spec.services.keys().map(String::as_str)),
                    )
                    .map_err(|e| format!("writing the hosts file: {e}"))?;
                    let resolv = if fenced_network || open_network {
                        Some(crate::executor::netns::resolv_conf(&self.job.dir)?)
                    } else if self.spec.network {
                        Some(PathBuf::from("/etc/resolv.conf"))
                    } else {
                        None
                    };
                    args.extend(super::image::mounts(
                        r,
                        workspace,
                        script_path,
                        &hosts,
                        resolv.as_deref(),
                    )?);
                    let mut services = Vec::new();
                    for (name, image) in &self.spec.services {
                        let images = self.images.as_ref().expect("a rootfs comes from images");
                        let began = Instant::now();
                        let root = images(image, self.spec.trust)
                            .map_err(|e| format!("service {name}'s image {image}: {e}"))?;
                        log_line_to(
                            &self.job.dir,
                            &format!(
                                "seakeeper: service {name}'s image {image} ready in {:.1} s",
                                began.elapsed().as_secs_f64()
                            ),
                        );
                        services.push(super::services::launch(
                            name,
                            &root,
                            bwrap,
                            &hosts,
                            bwrap_can_disable_userns(bwrap),
                        )?);
                    }
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
                    let mut launch = self.launch_of(bwrap.clone(), args, None, workspace)?;
                    launch.services = services;
                    launch.open_network = open_network;
                    return Ok((launch, env));
                }
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
        let mut launch = self.launch_of(program, args, cwd, workspace)?;
        launch.secrets_dir = secrets_dir;
        Ok((launch, env))
    }

    /// The launch of `program args` for this job.
    fn launch_of(
        &self,
        program: PathBuf,
        args: Vec<String>,
        cwd: Option<PathBuf>,
        workspace: &Path,
    ) -> Result<Launch, String> {
        let fenced_network =
            self.bwrap.is_some() && self.spec.network && self.spec.trust == Trust::Untrusted;
        Ok(Launch {
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
            open_network: false,
            services: Vec::new(),
            caches: Vec::new(),
            masked: self.secrets.iter().map(|(name, _)| name.clone()).collect(),
            secrets_dir: None,
        })
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
