//! What an untrusted job may consume and call, on the local executor: a workspace quota and a
//! log cap (enforced by the supervisor), a pids limit (a pids cgroup per job, where one can be
//! made), and a seccomp filter handed to bubblewrap that refuses the system calls a build never
//! needs and a sandbox escape does (nested namespaces, mount, ptrace, keyctl, bpf, ...).
//! This module only builds and measures; the supervisor in `local` applies them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Per-job limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLimits {
    /// The most bytes the workspace may hold; past it the job is stopped and fails.
    pub workspace_bytes: u64,
    /// The most bytes of the job's output kept in its log; past it a marker says where the
    /// log was cut (the job goes on).
    pub log_bytes: u64,
    /// The most processes and threads the job may have at once.
    pub pids: u32,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            workspace_bytes: 10 << 30,
            log_bytes: 64 << 20,
            pids: 4096,
        }
    }
}

/// The bytes under `dir` (regular files, not following symlinks), counting stopped once past
/// `stop_at`.
pub fn dir_size(dir: &Path, stop_at: u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                total += meta.len();
                if total > stop_at {
                    return total;
                }
            }
        }
    }
    total
}

/// A pids cgroup made for one job, removed when dropped (once its processes are gone).
#[derive(Debug)]
pub struct PidsCgroup {
    dir: PathBuf,
}

impl PidsCgroup {
    /// Makes `seakeeper/<name>` under a writable pids hierarchy (cgroup v1 `pids`, or v2 with
    /// the pids controller), limited to `max`; `None` where there is none.
    pub fn create(name: &str, max: u32) -> Option<PidsCgroup> {
        let roots = [
            PathBuf::from("/sys/fs/cgroup/pids"),
            PathBuf::from("/sys/fs/cgroup"),
            PathBuf::from("/sys/fs/cgroup/unified"),
        ];
        for root in roots {
            let parent = root.join("seakeeper");
            if !root.join("cgroup.procs").exists() {
                continue;
            }
            if root.join("cgroup.controllers").exists() {
                // v2: the controller must be enabled for children.
                let enabled = std::fs::read_to_string(root.join("cgroup.subtree_control"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .any(|c| c == "pids");
                if !enabled {
                    continue;
                }
                let _ = std::fs::create_dir(&parent);
                let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+pids");
            } else {
                let _ = std::fs::create_dir(&parent);
            }
            let dir = parent.join(name);
            let _ = std::fs::create_dir(&dir);
            if std::fs::write(dir.join("pids.max"), max.to_string()).is_ok() {
                return Some(PidsCgroup { dir });
            }
            let _ = std::fs::remove_dir(&dir);
        }
        None
    }

    /// The file a process writes `0` to in order to enter the cgroup.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // The processes were killed just before; the kernel may take a moment to reap them.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

// Classic BPF, as seccomp takes it.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// Namespace flags of clone(2): a job may not make namespaces of its own.
const CLONE_NS_FLAGS: u32 = 0x0002_0000 // NEWNS
    | 0x0200_0000 // NEWCGROUP
    | 0x0400_0000 // NEWUTS
    | 0x0800_0000 // NEWIPC
    | 0x1000_0000 // NEWUSER
    | 0x2000_0000 // NEWPID
    | 0x4000_0000 // NEWNET
    | 0x0000_0080; // NEWTIME

/// System calls a job is refused (EPERM): namespaces and mounts, tracing other processes, the
/// kernel keyring, loading code into the kernel, and the like.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const DENIED: &[libc::c_long] = &[
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
];

struct Insn {
    code: u16,
    jt: Target,
    jf: Target,
    k: u32,
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Allow,
    Deny,
    NoSys,
    CloneCheck,
}

/// The seccomp program (raw `struct sock_filter` array) bubblewrap installs with `--seccomp`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn seccomp_program() -> Vec<u8> {
    use Target::*;
    let insn = |code, jt, jf, k| Insn { code, jt, jf, k };
    let mut body = vec![
        insn(LD_W_ABS, Next, Next, 4), // arch
        insn(JEQ_K, Next, Deny, AUDIT_ARCH),
        insn(LD_W_ABS, Next, Next, 0), // syscall number
        // The x32 ABI numbers (bit 30) would pass every check below: refuse them.
        insn(JGE_K, Deny, Next, 0x4000_0000),
        insn(JEQ_K, NoSys, Next, libc::SYS_clone3 as u32),
        insn(JEQ_K, CloneCheck, Next, libc::SYS_clone as u32),
    ];
    for nr in DENIED {
        body.push(insn(JEQ_K, Deny, Next, *nr as u32));
    }
    body.push(insn(RET_K, Next, Next, RET_ALLOW));
    // The tail: clone's flags, then the return values jumps land on.
    let clone_at = body.len();
    body.push(insn(LD_W_ABS, Next, Next, 16)); // args[0], low 32 bits (little-endian)
    body.push(insn(JSET_K, Deny, Allow, CLONE_NS_FLAGS));
    let allow_at = body.len();
    body.push(insn(RET_K, Next, Next, RET_ALLOW));
    let deny_at = body.len();
    body.push(insn(RET_K, Next, Next, RET_ERRNO | libc::EPERM as u32));
    let nosys_at = body.len();
    // clone3 passes its flags in memory seccomp cannot read: ENOSYS makes libc fall back to
    // clone, whose flags are checked above.
    body.push(insn(RET_K, Next, Next, RET_ERRNO | libc::ENOSYS as u32));
    let mut out = Vec::with_capacity(body.len() * 8);
    for (i, ins) in body.iter().enumerate() {
        let offset = |t: Target| -> u8 {
            let to = match t {
                Next => return 0,
                Allow => allow_at,
                Deny => deny_at,
                NoSys => nosys_at,
                CloneCheck => clone_at,
            };
            u8::try_from(to - i - 1).expect("the program is short: jumps fit in a byte")
        };
        out.extend_from_slice(&ins.code.to_ne_bytes());
        out.push(offset(ins.jt));
        out.push(offset(ins.jf));
        out.extend_from_slice(&ins.k.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seccomp_program_is_well_formed() {
        let p = seccomp_program();
        assert_eq!(p.len() % 8, 0);
        assert!(p.len() / 8 < 255);
        // Ends in returns.
        let last = &p[p.len() - 8..];
        assert_eq!(u16::from_ne_bytes([last[0], last[1]]), RET_K);
    }

    #[test]
    fn dir_size_stops_counting_past_the_limit() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/x"), vec![0u8; 1000]).unwrap();
        std::fs::write(d.path().join("y"), vec![0u8; 500]).unwrap();
        assert_eq!(dir_size(d.path(), u64::MAX), 1500);
        assert!(dir_size(d.path(), 10) > 10);
    }
}
