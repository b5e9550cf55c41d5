//! A job's services, locally: each runs its image's entrypoint and command under bubblewrap,
//! in its own root and user but in the job's network namespace, so the job reaches it on
//! loopback at the ports its image documents, or by its name (the job's hosts file maps every
//! service to 127.0.0.1). They start after the job's namespace exists and before the job runs
//! (the job waits, blocked, until each service listens on every port its image exposes, or a
//! deadline passes); their output goes to the job's log, each line prefixed `[name]`; they are
//! killed when the job ends. On Kubernetes the same services run as sidecars in the job's pod.
//!
//! Joining another namespace needs privilege over it: services run when seakeeper runs as
//! root (as a server does); otherwise the job is refused with the reason.

use std::io::Read as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::image::{Rootfs, environment};

/// How much of each of a service's output streams goes to the job's log.
pub const SERVICE_LOG_BYTES: usize = 4 << 20;

/// How long a service may take to listen on its ports.
pub const READY_WITHIN: Duration = Duration::from_secs(60);

/// What runs one service (written to `launch.json`: no secrets in it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceLaunch {
    /// Its host name.
    pub name: String,
    /// bubblewrap.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its environment (the image's).
    pub env: Vec<(String, String)>,
    /// The TCP ports it must listen on before the job starts.
    pub ports: Vec<u16>,
}

/// The launch of service `name` from its unpacked image.
pub fn launch(
    name: &str,
    rootfs: &Rootfs,
    bwrap: &Path,
    hosts: &Path,
    disable_userns: bool,
) -> Result<ServiceLaunch, String> {
    let command: Vec<String> = rootfs
        .entrypoint
        .iter()
        .chain(&rootfs.cmd)
        .cloned()
        .collect();
    if command.is_empty() {
        return Err(format!(
            "service {name}: its image has no entrypoint or command to run"
        ));
    }
    let text = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{}: not UTF-8", p.display()))
    };
    let mut args: Vec<String> = [
        "--unshare-all",
        "--share-net",
        "--unshare-user",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    .map(str::to_owned)
    .to_vec();
    if disable_userns {
        args.push("--disable-userns".into());
    }
    args.extend([
        "--uid".into(),
        rootfs.uid.to_string(),
        "--gid".into(),
        rootfs.gid.to_string(),
        "--hostname".into(),
        name.to_owned(),
        "--ro-bind".into(),
        text(&rootfs.root)?,
        "/".into(),
        "--proc".into(),
        "/proc".into(),
        "--dev".into(),
        "/dev".into(),
    ]);
    for (dir, size) in [
        ("/tmp", 1u64 << 30),
        ("/run", 256 << 20),
        ("/var/tmp", 256 << 20),
    ] {
        args.extend([
            "--size".into(),
            size.to_string(),
            "--tmpfs".into(),
            dir.into(),
        ]);
    }
    args.extend(["--ro-bind".into(), text(hosts)?, "/etc/hosts".into()]);
    let dir = if rootfs.working_dir.is_empty() {
        "/".to_owned()
    } else {
        rootfs.working_dir.clone()
    };
    args.extend(["--chdir".into(), dir, "--".into()]);
    args.extend(command);
    let mut env = environment(rootfs);
    // A service's home is its own, not the job's workspace (which it does not see).
    env.retain(|(k, _)| k != "HOME");
    env.push(("HOME".into(), "/tmp".into()));
    Ok(ServiceLaunch {
        name: name.to_owned(),
        program: bwrap.to_owned(),
        args,
        env,
        ports: rootfs.ports.clone(),
    })
}

/// The running services of a job; killed when dropped.
pub struct Running {
    children: Vec<(String, Child)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            // SAFETY: signals the process group of our own child.
            unsafe {
                libc::killpg(c.id() as i32, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }
}

/// Whether this process may join a job's network namespace.
pub fn can_join() -> Result<(), String> {
    // SAFETY: geteuid only reads this process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "services run in the job's network namespace, which only a seakeeper running as \
             root may join; run this job on a server (or as root), or on Kubernetes"
                .into(),
        );
    }
    Ok(())
}

/// Starts every service in the network namespace of `pid` and waits until each listens on its
/// ports. `line`: where their output goes (one call per line, prefixed with the name).
/// Each service runs under the job's seccomp filter (`seccomp`) and in its pids cgroup
/// (`cgroup_procs`, when there is one).
pub fn start(
    services: &[ServiceLaunch],
    pid: i32,
    line: Arc<dyn Fn(&str) + Send + Sync>,
    seccomp: Option<&Path>,
    cgroup_procs: Option<std::ffi::CString>,
) -> Result<Running, String> {
    can_join()?;
    crate::executor::netns::loopback_up(pid)?;
    let path = format!("/proc/{pid}/ns/net");
    let net: OwnedFd = std::fs::File::open(&path)
        .map(OwnedFd::from)
        .map_err(|e| format!("{path}: {e}"))?;
    let mut running = Running {
        children: Vec::new(),
    };
    for s in services {
        let fd = net.as_raw_fd();
        let filter = match seccomp {
            Some(p) => Some(std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?),
            None => None,
        };
        let filter_fd = filter.as_ref().map(|f| f.as_raw_fd());
        let procs = cgroup_procs.clone();
        let mut cmd = Command::new(&s.program);
        if let Some(f) = filter_fd {
            cmd.args(["--seccomp".to_owned(), f.to_string()]);
        }
        cmd.args(&s.args)
            .env_clear()
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: setns is async-signal-safe; the child is single-threaded after fork.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(f) = filter_fd {
                    libc::fcntl(f, libc::F_SETFD, 0);
                }
                if let Some(procs) = &procs {
                    let c = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    if c < 0 || libc::write(c, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::other("entering the job's pids cgroup"));
                    }
                    libc::close(c);
                }
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting service {}: {e}", s.name))?;
        drop(filter);
        for stream in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let (line, name) = (line.clone(), s.name.clone());
            std::thread::spawn(move || pump(stream, &name, &*line));
        }
        line(&format!(
            "[{}] seakeeper: started (ports {})",
            s.name,
            if s.ports.is_empty() {
                "none documented".to_owned()
            } else {
                s.ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        running.children.push((s.name.clone(), child));
    }
    // Every documented port listening, seen in the namespace's own socket table.
    let deadline = Instant::now() + READY_WITHIN;
    for (i, s) in services.iter().enumerate() {
        loop {
            let listening = listening_ports(pid);
            if s.ports.iter().all(|p| listening.contains(p)) {
                break;
            }
            if let Ok(Some(status)) = running.children[i].1.try_wait() {
                return Err(format!(
                    "service {} ended before it was ready ({status})",
                    s.name
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "service {} did not listen on {:?} within {} s",
                    s.name,
                    s.ports,
                    READY_WITHIN.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(running)
}

/// The TCP ports listening in the network namespace of `pid` (`/proc/<pid>/net/tcp{,6}`).
fn listening_ports(pid: i32) -> Vec<u16> {
    let mut out = Vec::new();
    for file in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
            continue;
        };
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            // `sl local_address rem_address st`: state 0A is LISTEN.
            if f.len() > 3
                && f[3] == "0A"
                && let Some(port) = f[1].rsplit(':').next()
                && let Ok(p) = u16::from_str_radix(port, 16)
            {
                out.push(p);
            }
        }
    }
    out
}

/// Copies a service's output to `line`, a line at a time, cut at 64 KiB.
fn pump(stream: Box<dyn std::io::Read + Send>, name: &str, line: &(dyn Fn(&str) + Send + Sync)) {
    use std::io::BufRead as _;
    let mut reader = std::io::BufReader::new(stream);
    let mut buf = Vec::new();
    let mut logged = 0usize;
    while (&mut reader)
        .take(64 << 10)
        .read_until(b'\n', &mut buf)
        .unwrap_or(0)
        > 0
    {
        // Past the cap the output is read and dropped, so a chatty service cannot fill the disk.
        if logged < SERVICE_LOG_BYTES {
            logged += buf.len();
            let text = String::from_utf8_lossy(&buf);
            line(&format!("[{name}] {}", text.trim_end_matches(['\n', '\r'])));
            if logged >= SERVICE_LOG_BYTES {
                line(&format!(
                    "[{name}] seakeeper: this service's log is cut here"
                ));
            }
        }
        buf.clear();
    }
}

/// The log line writer of a job, shareable with service threads.
pub fn log_writer(log: Arc<Mutex<std::fs::File>>) -> Arc<dyn Fn(&str) + Send + Sync> {
    Arc::new(move |text: &str| super::sandbox::log_line(&log, text))
}
