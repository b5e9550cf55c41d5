//! The network an untrusted local job gets when the trusted policy allows it
//! (`policies/trust.yaml` `untrusted_network`): a network namespace of its own, not the host's,
//! reaching the outside through `slirp4netns` with the host's loopback refused
//! (`--disable-host-loopback`), and routes that refuse every private, link-local and
//! carrier-grade NAT range and each address of the host itself, so the job reaches neither
//! this server's services nor anything else on its networks: the same fence as the
//! Kubernetes NetworkPolicy ([`super::NEVER_REACHED`]). The job has no capabilities in its
//! namespace, so it cannot lift the routes.
//!
//! How: bubblewrap makes the namespace and, before it runs the job, reports its pid
//! (`--info-fd`) and waits (`--block-fd`); seakeeper then starts `slirp4netns` on the
//! namespace, adds the refusing routes from inside it (`ip`), and only then lets the job run.
//! Anything failing on the way stops the job: no fence, no network.

use std::io::Read as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long setting up the fence may take.
const SETUP: Duration = Duration::from_secs(10);

/// Where the job's DNS goes: slirp4netns answers on this address.
pub const RESOLV_CONF: &str = "nameserver 10.0.2.3\n";

/// `name` in the system's directories. Never the `PATH`: under a supervisor that is the job's
/// own (its image's), and these tools run as seakeeper on the host.
fn find(name: &str) -> Option<PathBuf> {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.is_file())
}

/// Whether this machine can fence a job's network; the reason when not.
pub fn available() -> Result<(), String> {
    for tool in ["slirp4netns", "ip"] {
        if find(tool).is_none() {
            return Err(format!(
                "an untrusted job with the network needs {tool} to fence it (apt-get install \
                 slirp4netns iproute2)"
            ));
        }
    }
    Ok(())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just made and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The descriptors bubblewrap reports and waits on.
pub struct Pipes {
    info_r: OwnedFd,
    /// bubblewrap's end of `--info-fd` (inherited by it, closed here after the start).
    pub info_w: OwnedFd,
    /// bubblewrap's end of `--block-fd`.
    pub block_r: OwnedFd,
    block_w: OwnedFd,
}

impl Pipes {
    /// New pipes (close-on-exec; the child's ends are made inheritable in its `pre_exec`).
    pub fn new() -> Result<Pipes, String> {
        let (info_r, info_w) = pipe()?;
        let (block_r, block_w) = pipe()?;
        Ok(Pipes {
            info_r,
            info_w,
            block_r,
            block_w,
        })
    }

    /// bubblewrap's arguments for them.
    pub fn args(&self) -> [String; 4] {
        [
            "--info-fd".into(),
            self.info_w.as_raw_fd().to_string(),
            "--block-fd".into(),
            self.block_r.as_raw_fd().to_string(),
        ]
    }

    /// After bubblewrap started: fences its namespace and lets the job run. The fence lasts
    /// as long as the returned value.
    pub fn fence(self) -> Result<Fence, String> {
        self.start(true, false, |_| Ok(()))
            .map(|(f, ())| f.expect("fenced when asked"))
    }

    /// After bubblewrap started: gives its namespace a way out through `slirp4netns` when
    /// `fenced` (with the refusing routes) or `open` (without), then calls `before` with the
    /// pid of the process in the namespace (to start what must be there before the job), then
    /// lets the job run.
    pub fn start<T>(
        self,
        fenced: bool,
        open: bool,
        before: impl FnOnce(i32) -> Result<T, String>,
    ) -> Result<(Option<Fence>, T), String> {
        let Pipes {
            info_r,
            info_w,
            block_r,
            block_w,
        } = self;
        // Only bubblewrap holds these now: its death ends the read below.
        drop(info_w);
        drop(block_r);
        let deadline = Instant::now() + SETUP;
        let pid = child_pid(&info_r, deadline)?;
        let fence = if fenced || open {
            let f = start_slirp(pid, deadline)?;
            if fenced {
                refuse_routes(pid)?;
            }
            Some(f)
        } else {
            None
        };
        let made = before(pid)?;
        // SAFETY: writes one byte from a live buffer to a descriptor we own.
        if unsafe { libc::write(block_w.as_raw_fd(), b"1".as_ptr().cast(), 1) } != 1 {
            return Err(format!(
                "letting the job start: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok((fence, made))
    }
}

/// Reads bubblewrap's `{"child-pid": N, ...}` report.
fn child_pid(info: &OwnedFd, deadline: Instant) -> Result<i32, String> {
    let mut data = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("bubblewrap did not report its namespace in time".into());
        }
        let mut pfd = libc::pollfd {
            fd: info.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polls one descriptor we own, through a live pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a live buffer of the given size.
        let got = unsafe { libc::read(info.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            return Err("bubblewrap ended before it reported its namespace".into());
        }
        data.extend_from_slice(&buf[..got as usize]);
        if data.len() > 64 << 10 {
            return Err("bubblewrap's report is too long".into());
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) {
            return v["child-pid"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("bubblewrap's report has no child-pid: {v}"));
        }
    }
}

/// `slirp4netns` attached to the job's namespace, running until this is dropped.
pub struct Fence {
    slirp: Child,
    exit_w: Option<OwnedFd>,
}

impl Drop for Fence {
    fn drop(&mut self) {
        // Closing the exit descriptor asks slirp4netns to end; it is killed if it does not.
        drop(self.exit_w.take());
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.slirp.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.slirp.kill();
        let _ = self.slirp.wait();
    }
}

fn start_slirp(pid: i32, deadline: Instant) -> Result<Fence, String> {
    let program = find("slirp4netns").ok_or("slirp4netns is not installed")?;
    let (ready_r, ready_w) = pipe()?;
    let (exit_r, exit_w) = pipe()?;
    let mut cmd = Command::new(program);
    cmd.args([
        "--configure",
        "--mtu=65520",
        "--disable-host-loopback",
        "--ready-fd",
        &ready_w.as_raw_fd().to_string(),
        "--exit-fd",
        &exit_r.as_raw_fd().to_string(),
        "--netns-type=path",
    ]);
    // SAFETY: geteuid only reads this process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        cmd.arg(format!("--userns-path=/proc/{pid}/ns/user"));
    }
    cmd.arg(format!("/proc/{pid}/ns/net"))
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (ready_fd, exit_fd) = (ready_w.as_raw_fd(), exit_r.as_raw_fd());
    // SAFETY: fcntl is async-signal-safe; it only clears close-on-exec on two descriptors.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            libc::fcntl(ready_fd, libc::F_SETFD, 0);
            libc::fcntl(exit_fd, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let slirp = cmd
        .spawn()
        .map_err(|e| format!("starting slirp4netns: {e}"))?;
    drop(ready_w);
    drop(exit_r);
    let mut fence = Fence {
        slirp,
        exit_w: Some(exit_w),
    };
    // One byte once the interface is up; end of file if it failed.
    let mut pfd = libc::pollfd {
        fd: ready_r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let left = deadline.saturating_duration_since(Instant::now());
    // SAFETY: polls one descriptor we own, through a live pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
    let mut byte = [0u8; 1];
    let ok = n > 0 && std::fs::File::from(ready_r).read(&mut byte).unwrap_or(0) == 1;
    if !ok {
        let _ = fence.slirp.kill();
        let mut err = String::new();
        if let Some(mut e) = fence.slirp.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!(
            "slirp4netns could not give the job its network: {}",
            err.trim()
        ));
    }
    Ok(fence)
}

/// The IPv4 addresses of this host's interfaces (other than loopback).
fn host_addresses() -> Vec<std::net::Ipv4Addr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below; each node is read while it lives.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut p = list;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null() && i32::from((*a).sa_family) == libc::AF_INET {
                let sin = &*(a as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    out.push(ip);
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out
}

/// Adds `prohibit` routes inside the job's namespace for everything it must never reach.
fn refuse_routes(pid: i32) -> Result<(), String> {
    let mut batch = String::new();
    for cidr in super::NEVER_REACHED {
        if cidr.starts_with("127.") {
            // The job's own loopback stays; the host's is refused by slirp4netns.
            continue;
        }
        batch.push_str(&format!("route add prohibit {cidr}\n"));
    }
    for a in host_addresses() {
        batch.push_str(&format!("route add prohibit {a}/32\n"));
    }
    run_ip(pid, &batch).map_err(|e| format!("fencing the job's network (ip route): {e}"))
}

/// Brings up loopback in the namespace of `pid` (where a job's services listen).
pub fn loopback_up(pid: i32) -> Result<(), String> {
    run_ip(pid, "link set lo up\n").map_err(|e| format!("bringing up the job's loopback: {e}"))
}

/// Runs `ip -batch` with `batch` inside the network namespace of `pid`.
fn run_ip(pid: i32, batch: &str) -> Result<(), String> {
    let ip = find("ip").ok_or("ip (iproute2) is not installed")?;
    let open = |ns: &str| -> Result<OwnedFd, String> {
        let path = format!("/proc/{pid}/ns/{ns}");
        std::fs::File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| format!("{path}: {e}"))
    };
    let net = open("net")?;
    // SAFETY: geteuid only reads this process's credentials.
    let user = if unsafe { libc::geteuid() } != 0 {
        Some(open("user")?)
    } else {
        None
    };
    let (net_fd, user_fd) = (net.as_raw_fd(), user.as_ref().map(|u| u.as_raw_fd()));
    let mut cmd = Command::new(&ip);
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setns is async-signal-safe; the child is single-threaded after fork.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if let Some(u) = user_fd
                && libc::setns(u, libc::CLONE_NEWUSER) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setns(net_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("entering the job's network namespace: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(batch.as_bytes())
            .map_err(|e| format!("ip: {e}"))?;
    }
    let out = wait_output(child, SETUP)?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    drop(net);
    drop(user);
    Ok(())
}

fn wait_output(mut child: Child, limit: Duration) -> Result<std::process::Output, String> {
    let until = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().map_err(|e| e.to_string()),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("ip did not finish in time".into());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Writes the job's `resolv.conf` (slirp4netns's DNS) into its directory; returns its path.
pub fn resolv_conf(job_dir: &Path) -> Result<PathBuf, String> {
    let path = job_dir.join("resolv.conf");
    std::fs::write(&path, RESOLV_CONF).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}
