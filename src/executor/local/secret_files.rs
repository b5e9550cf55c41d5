//! A job's secrets as files on a tmpfs while it runs: in the sandbox, `/run/secrets/<NAME>`
//! (bubblewrap copies each from a memfd into a tmpfs of the sandbox's own, read-only); without
//! one, a directory of `/dev/shm` (mode 0700, files 0400) removed when the job ends. Values
//! never touch a disk.

use std::io::Write as _;
use std::path::PathBuf;

use super::Launch;

/// Where a sandboxed job finds its secrets as files (a tmpfs of the sandbox's own).
pub(super) const SECRETS_DIR: &str = "/run/secrets";

/// The job's secrets as files on a tmpfs, for as long as the job runs: with bwrap, each in a
/// memfd that bwrap copies to `/run/secrets/<NAME>` (read-only) in the sandbox's own tmpfs;
/// without, a directory of `/dev/shm` (mode 0700) removed when this is dropped.
pub(super) struct SecretFiles {
    memfds: Vec<std::fs::File>,
    dir: Option<PathBuf>,
}

impl SecretFiles {
    pub(super) fn new(launch: &Launch, values: &[(String, String)]) -> Result<SecretFiles, String> {
        let mut files = SecretFiles {
            memfds: Vec::new(),
            dir: None,
        };
        if values.is_empty() {
            return Ok(files);
        }
        if launch.sandboxed {
            for (name, value) in values {
                // SAFETY: memfd_create with a NUL-terminated name; the descriptor is owned here.
                let fd =
                    unsafe { libc::memfd_create(c"seakeeper-secret".as_ptr(), libc::MFD_CLOEXEC) };
                if fd < 0 {
                    return Err(format!(
                        "a memfd for secret {name}: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                use std::io::Seek as _;
                use std::os::unix::io::FromRawFd as _;
                // SAFETY: a descriptor just made, owned by nothing else.
                let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
                f.write_all(value.as_bytes())
                    .and_then(|()| f.seek(std::io::SeekFrom::Start(0)).map(|_| ()))
                    .map_err(|e| format!("a memfd for secret {name}: {e}"))?;
                files.memfds.push(f);
            }
        } else if let Some(dir) = &launch.secrets_dir {
            use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
            let _ = std::fs::remove_dir_all(dir);
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            files.dir = Some(dir.clone());
            for (name, value) in values {
                let path = dir.join(name);
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o400)
                    .open(&path)
                    .and_then(|mut f| f.write_all(value.as_bytes()))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Ok(files)
    }

    /// bubblewrap's arguments for the files (their descriptors are inherited).
    pub(super) fn bwrap_args(&self, values: &[(String, String)]) -> Vec<String> {
        use std::os::unix::io::AsRawFd as _;
        let mut args = Vec::new();
        if self.memfds.is_empty() {
            return args;
        }
        args.extend([
            "--size".into(),
            "1048576".into(),
            "--tmpfs".into(),
            SECRETS_DIR.into(),
        ]);
        for (f, (name, _)) in self.memfds.iter().zip(values) {
            args.extend([
                "--perms".into(),
                "0444".into(),
                "--ro-bind-data".into(),
                f.as_raw_fd().to_string(),
                format!("{SECRETS_DIR}/{name}"),
            ]);
        }
        args
    }

    pub(super) fn fds(&self) -> Vec<i32> {
        use std::os::unix::io::AsRawFd as _;
        self.memfds.iter().map(|f| f.as_raw_fd()).collect()
    }
}

impl Drop for SecretFiles {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
