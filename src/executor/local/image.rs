//! A job in its own image: the image's root filesystem (unpacked once, shared read-only)
//! mounted as `/` under bubblewrap, with tmpfs where a container has writable scratch space
//! (`/tmp`, `/run`, `/var/tmp`), the workspace at `/workspace` as on Kubernetes, the image's
//! environment and user, and the commands started in the workspace as the Kubernetes
//! executor's `workingDir` does. Nothing of the host's filesystem is visible but the workspace
//! and the job's script.
//!
//! The image is pulled and unpacked by whoever made the executor (see [`Images`]): the
//! executor itself knows no registry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An image ready to run: an unpacked root and how the image says to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The root filesystem (read-only, shared by every job of the image).
    pub root: PathBuf,
    /// The image's environment.
    pub env: Vec<(String, String)>,
    /// The image's working directory (the job's commands start in the workspace; services
    /// start here).
    pub working_dir: String,
    /// The uid and gid to run as (never 0).
    pub uid: u32,
    /// The gid.
    pub gid: u32,
    /// The image's entrypoint and command (what a service runs).
    pub entrypoint: Vec<String>,
    /// The command.
    pub cmd: Vec<String>,
    /// The TCP ports the image documents.
    pub ports: Vec<u16>,
}

/// Makes a job's image ready: pulls it by digest if missing, unpacks it once. Called on the
/// job's own thread, never on the reconcile loop; an `Err` fails the job before it runs.
/// It is told whether the job is trusted: an untrusted job's image comes only from registries
/// the server lists, without seakeeper's registry accounts.
pub type Images = Arc<dyn Fn(&str, crate::model::Trust) -> Result<Rootfs, String> + Send + Sync>;

/// The default `PATH` when an image sets none (what container runtimes use).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The bubblewrap arguments that mount `rootfs` as the job's filesystem: the root read-only,
/// scratch tmpfs, `/proc`, `/dev`, the workspace, the script and the hosts file.
/// `resolv_conf`: the name service file to show (a job with the network).
pub fn mounts(
    rootfs: &Rootfs,
    workspace: &Path,
    script: &Path,
    hosts: &Path,
    resolv_conf: Option<&Path>,
) -> Result<Vec<String>, String> {
    let text = |p: &Path| {
        p.to_str().map(str::to_owned).ok_or_else(|| {
            format!(
                "{}: a path seakeeper runs jobs in must be UTF-8",
                p.display()
            )
        })
    };
    let mut args: Vec<String> = vec!["--ro-bind".into(), text(&rootfs.root)?, "/".into()];
    args.extend(["--proc", "/proc", "--dev", "/dev"].map(str::to_owned));
    args.extend([
        "--size".into(),
        (2u64 << 30).to_string(),
        "--tmpfs".into(),
        "/tmp".into(),
    ]);
    for scratch in ["/run", "/var/tmp"] {
        args.extend([
            "--size".into(),
            (256u64 << 20).to_string(),
            "--tmpfs".into(),
            scratch.into(),
        ]);
    }
    args.extend(["--ro-bind".into(), text(hosts)?, "/etc/hosts".into()]);
    if let Some(r) = resolv_conf {
        args.extend(["--ro-bind".into(), text(r)?, "/etc/resolv.conf".into()]);
    }
    args.extend(["--bind".into(), text(workspace)?, "/workspace".into()]);
    args.extend([
        "--size".into(),
        (1u64 << 20).to_string(),
        "--tmpfs".into(),
        "/seakeeper".into(),
        "--ro-bind".into(),
        text(script)?,
        "/seakeeper/script.sh".into(),
        "--remount-ro".into(),
        "/seakeeper".into(),
    ]);
    Ok(args)
}

/// The hosts file of a job: loopback, the job's own name, and each service's name (services
/// share the job's network namespace, so they are all on loopback).
pub fn hosts_file<'a>(services: impl Iterator<Item = &'a str>) -> String {
    let mut names = vec!["localhost", "seakeeper-job"];
    names.extend(services);
    format!(
        "127.0.0.1\t{}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        names.join(" ")
    )
}

/// The job's environment in its image: the image's, then what every job gets (`HOME` is the
/// workspace, as on Kubernetes), then the job's own.
pub fn environment(rootfs: &Rootfs) -> Vec<(String, String)> {
    let mut env = rootfs.env.clone();
    // The environment passes through host processes (the supervisor, bubblewrap) before the
    // sandbox: an image's loader variables (`LD_PRELOAD` ...) would reach them.
    env.retain(|(k, _)| !super::sandbox::loader_variable(k));
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    env.retain(|(k, _)| k != "HOME" && k != "TMPDIR");
    env.push(("HOME".into(), "/workspace".into()));
    env.push(("TMPDIR".into(), "/tmp".into()));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_images_path_wins_and_home_is_the_workspace() {
        let r = Rootfs {
            root: "/r".into(),
            env: vec![
                ("PATH".into(), "/opt/bin".into()),
                ("HOME".into(), "/root".into()),
            ],
            working_dir: String::new(),
            uid: 1,
            gid: 1,
            entrypoint: vec![],
            cmd: vec![],
            ports: vec![],
        };
        let env = environment(&r);
        assert!(env.contains(&("PATH".into(), "/opt/bin".into())));
        assert!(env.contains(&("HOME".into(), "/workspace".into())));
        assert!(!env.contains(&("HOME".into(), "/root".into())));
        assert!(
            hosts_file(["db"].into_iter()).starts_with("127.0.0.1\tlocalhost seakeeper-job db\n")
        );
    }
}
