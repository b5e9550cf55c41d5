//! seakeeper's own image (`seakeeper image self`): the release binary and exactly the files it
//! and git need at run time, from pinned inputs, so the same inputs give the same digest on any
//! machine. The inputs besides the binary are pinned in a lock file (`bootstrap/image/
//! inputs.lock`), one line per file: its path, the Debian package it comes from and its SHA-256.
//! A build reads each file from the system (or a `--sysroot`) and refuses one whose content is
//! not the lock's; `--update-lock` writes the lock from what the system has, for review.
//!
//! What is in the image: `/usr/local/bin/seakeeper` (entrypoint), git and its HTTP helper (the
//! fetch container fetches sources with it), the shared libraries of all three as `ldd` finds
//! them, the CA bundle, and a passwd/group naming uid 65532. No shell: `seakeeper job fetch`
//! and `job collect` start git directly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::ImageSpec;

/// The programs the image must run besides seakeeper (their libraries are found by `ldd`).
pub const ROOTS: &[&str] = &[
    "usr/bin/git",
    "usr/lib/git-core/git-remote-http",
    // Debian's is a link to git-remote-http; git runs it by name for https:// sources.
    "usr/lib/git-core/git-remote-https",
    "etc/ssl/certs/ca-certificates.crt",
];

/// Where the binary goes in the image.
pub const BINARY_PATH: &str = "usr/local/bin/seakeeper";

/// The uid the image's files name (Kubernetes runs it as this, `runAsNonRoot`).
pub const UID: u32 = 65532;

/// The lock file: every input of the image besides the binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The files, sorted by path.
    pub files: Vec<LockedFile>,
}

/// One pinned file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    /// Its path in the image and on the system (relative, `/`-separated).
    pub path: String,
    /// The Debian package (`name:arch version`) it comes from, or why none.
    pub package: String,
    /// Its content's SHA-256, hex.
    pub sha256: String,
}

/// Reading, checking or making the lock failed.
#[derive(Debug, thiserror::Error)]
pub enum SelfImageError {
    /// The lock file is not valid.
    #[error("{file}: {message}")]
    Lock {
        /// The lock file.
        file: PathBuf,
        /// What is wrong, with the line where known.
        message: String,
    },
    /// A file on the system is not what the lock pins.
    #[error(
        "{path}: content sha256:{found} is not the lock's sha256:{expected} (from {package}); the \
         system's package differs from the one reviewed: install that version, or run \
         `seakeeper image self --update-lock` and review the change"
    )]
    Mismatch {
        /// The file.
        path: String,
        /// What the lock says.
        expected: String,
        /// What the file has.
        found: String,
        /// Its package, as the lock names it.
        package: String,
    },
    /// Something could not be read or run.
    #[error("{0}")]
    Io(String),
}

/// The files `image self` writes itself (never taken from the lock).
const GENERATED: &[&str] = &["etc/passwd", "etc/group", "etc/nsswitch.conf"];

fn sha256_file(path: &Path) -> Result<String, SelfImageError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // Never blocks on a FIFO or reads a device: a regular file or an error naming it.
    let mut f = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| SelfImageError::Io(format!("{}: {e}", path.display())))?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(SelfImageError::Io(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| SelfImageError::Io(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Reads and checks a lock file.
pub fn load_lock(path: &Path) -> Result<Lock, SelfImageError> {
    let err = |message: String| SelfImageError::Lock {
        file: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let lock: Lock = yaml_serde::from_str(&text).map_err(|e| {
        err(match e.location() {
            Some(l) => format!("line {}: {e}", l.line()),
            None => e.to_string(),
        })
    })?;
    let mut seen = std::collections::BTreeSet::new();
    for f in &lock.files {
        if !crate::model::job::is_safe_relative_path(&f.path) {
            return Err(err(format!("{:?} is not a plain relative path", f.path)));
        }
        if f.path == BINARY_PATH || BINARY_PATH.starts_with(&format!("{}/", f.path)) {
            return Err(err(format!(
                "{}: {BINARY_PATH} is the binary, given with --binary",
                f.path
            )));
        }
        if GENERATED.contains(&f.path.as_str()) {
            return Err(err(format!(
                "{}: written by `image self` itself, never taken from the system",
                f.path
            )));
        }
        if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(format!("{}: sha256 is not 64 hex digits", f.path)));
        }
        if !seen.insert(f.path.as_str()) {
            return Err(err(format!("{} is listed twice", f.path)));
        }
    }
    if lock.files.is_empty() {
        return Err(err("no files".into()));
    }
    Ok(lock)
}

/// The lock as reviewed text.
pub fn render_lock(lock: &Lock) -> String {
    let mut t = String::from(
        "# seakeeper's runtime image: every file in it besides the seakeeper binary, with the\n\
         # Debian package it comes from and its SHA-256. Written by\n\
         # `seakeeper image self --update-lock`; reviewed like code. `seakeeper image self`\n\
         # refuses to build from a file whose content is not the one pinned here.\n\
         files:\n",
    );
    for f in &lock.files {
        t.push_str(&format!(
            "  - path: {}\n    package: \"{}\"\n    sha256: {}\n",
            f.path, f.package, f.sha256
        ));
    }
    t
}

/// The shared libraries (and the dynamic loader) `program` loads, as `ldd` lists them.
fn libraries(program: &Path) -> Result<Vec<String>, SelfImageError> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(|e| SelfImageError::Io(format!("ldd: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // Not a dynamic executable (a script, data): nothing to add.
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim().split(' ').next().unwrap_or(""),
            None => line.split(' ').next().unwrap_or(""),
        };
        if let Some(p) = path.strip_prefix('/') {
            libs.push(p.to_owned());
        } else if line.contains("not found") {
            return Err(SelfImageError::Io(format!(
                "{}: ldd: {line}",
                program.display()
            )));
        }
    }
    Ok(libs)
}

/// The Debian package that ships `path`, as `name:arch version`.
fn package_of(path: &str) -> String {
    let owner = |p: &str| -> Option<String> {
        let out = Command::new("dpkg").args(["-S", p]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let name = text.lines().next()?.split(':').take(2).collect::<Vec<_>>();
        // `libc6:amd64: /lib/...` or `git: /usr/bin/git`.
        let pkg = if name.len() == 2 && !name[1].starts_with(' ') {
            format!("{}:{}", name[0], name[1])
        } else {
            name[0].to_owned()
        };
        Some(pkg)
    };
    let abs = format!("/{path}");
    // Merged /usr: a file may be shipped under /lib and found under /usr/lib, or the reverse.
    let alternatives = [
        abs.clone(),
        abs.strip_prefix("/usr")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("/usr{abs}")),
        std::fs::canonicalize(&abs)
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    ];
    for p in alternatives.iter().filter(|p| !p.is_empty()) {
        if let Some(pkg) = owner(p) {
            let version = Command::new("dpkg-query")
                .args(["-W", "-f", "${Version}", &pkg])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            return format!("{pkg} {version}");
        }
    }
    if path == "etc/ssl/certs/ca-certificates.crt" {
        return "generated by update-ca-certificates (ca-certificates)".into();
    }
    "no Debian package".into()
}

/// The lock for what this system has: the roots, and the libraries of the roots and of
/// `binary`, each read from `sysroot` (the libraries as `ldd` finds them on this machine).
pub fn make_lock(binary: &Path, sysroot: &Path) -> Result<Lock, SelfImageError> {
    let mut paths: BTreeMap<String, ()> = BTreeMap::new();
    for root in ROOTS {
        paths.insert((*root).to_owned(), ());
        for lib in libraries(&sysroot.join(root))? {
            paths.insert(lib, ());
        }
    }
    for lib in libraries(binary)? {
        paths.insert(lib, ());
    }
    let mut files = Vec::new();
    for path in paths.into_keys() {
        let on_disk = sysroot.join(&path);
        files.push(LockedFile {
            sha256: sha256_file(&on_disk)?,
            package: package_of(&path),
            path,
        });
    }
    Ok(Lock { files })
}

/// What the image is made of, for its provenance: each input's name and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Its path in the image.
    pub path: String,
    /// Its package (or "seakeeper" for the binary).
    pub package: String,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// The image's spec, with every locked file read from `sysroot` and checked against the lock,
/// and the few generated files written under `scratch`. Returns the spec and the inputs.
pub fn image_spec(
    lock: &Lock,
    binary: &Path,
    sysroot: &Path,
    scratch: &Path,
) -> Result<(ImageSpec, Vec<Input>), SelfImageError> {
    let mut spec = ImageSpec::default();
    let mut inputs = Vec::new();
    let meta = std::fs::metadata(binary)
        .map_err(|e| SelfImageError::Io(format!("{}: {e}", binary.display())))?;
    if !meta.is_file() {
        return Err(SelfImageError::Io(format!(
            "{}: not a regular file",
            binary.display()
        )));
    }
    inputs.push(Input {
        path: BINARY_PATH.into(),
        package: format!("seakeeper {} (the binary given)", env!("CARGO_PKG_VERSION")),
        sha256: sha256_file(binary)?,
    });
    spec.files.insert(BINARY_PATH.into(), binary.to_owned());
    for f in &lock.files {
        // The real file behind any link (the image holds the content under the locked name).
        let on_disk = std::fs::canonicalize(sysroot.join(&f.path))
            .map_err(|e| SelfImageError::Io(format!("{}: {e} (pinned by the lock)", f.path)))?;
        let found = sha256_file(&on_disk)
            .map_err(|e| SelfImageError::Io(format!("{e} (pinned by the lock as {})", f.path)))?;
        if found != f.sha256.to_ascii_lowercase() {
            return Err(SelfImageError::Mismatch {
                path: f.path.clone(),
                expected: f.sha256.clone(),
                found,
                package: f.package.clone(),
            });
        }
        inputs.push(Input {
            path: f.path.clone(),
            package: f.package.clone(),
            sha256: found,
        });
        spec.files.insert(f.path.clone(), on_disk);
    }
    // Generated, the same on every machine.
    let generated = [
        (
            "etc/passwd",
            format!("root:x:0:0::/root:/nonexistent\nseakeeper:x:{UID}:{UID}::/tmp:/nonexistent\n"),
        ),
        ("etc/group", format!("root:x:0:\nseakeeper:x:{UID}:\n")),
        ("etc/nsswitch.conf", "hosts: files dns\n".to_owned()),
    ];
    std::fs::create_dir_all(scratch)
        .map_err(|e| SelfImageError::Io(format!("{}: {e}", scratch.display())))?;
    for (path, content) in generated {
        let file = scratch.join(path.replace('/', "_"));
        debug_assert!(GENERATED.contains(&path));
        std::fs::write(&file, &content)
            .map_err(|e| SelfImageError::Io(format!("{}: {e}", file.display())))?;
        inputs.push(Input {
            path: path.into(),
            package: "generated by seakeeper image self".into(),
            sha256: hex::encode(sha2::Sha256::digest(content.as_bytes())),
        });
        spec.files.insert(path.into(), file);
    }
    spec.entrypoint = vec![format!("/{BINARY_PATH}")];
    spec.env = BTreeMap::from([
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        (
            "SSL_CERT_FILE".to_owned(),
            "/etc/ssl/certs/ca-certificates.crt".to_owned(),
        ),
        (
            "GIT_SSL_CAINFO".to_owned(),
            "/etc/ssl/certs/ca-certificates.crt".to_owned(),
        ),
        ("HOME".to_owned(), "/tmp".to_owned()),
    ]);
    spec.labels = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_owned(),
            "seakeeper".to_owned(),
        ),
        (
            "org.opencontainers.image.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ]);
    spec.working_dir = Some("/workspace".into());
    Ok((spec, inputs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_lock_is_valid_and_pins_git_and_its_http_helper() {
        let lock =
            load_lock(&Path::new(env!("CARGO_MANIFEST_DIR")).join("bootstrap/image/inputs.lock"))
                .unwrap();
        for root in ROOTS {
            assert!(lock.files.iter().any(|f| f.path == *root), "{root}");
        }
    }

    #[test]
    fn a_lock_is_checked_and_round_trips() {
        let t = tempfile::tempdir().unwrap();
        let lock = Lock {
            files: vec![LockedFile {
                path: "usr/bin/git".into(),
                package: "git 1:2.39".into(),
                sha256: "a".repeat(64),
            }],
        };
        let p = t.path().join("inputs.lock");
        std::fs::write(&p, render_lock(&lock)).unwrap();
        assert_eq!(load_lock(&p).unwrap(), lock);
        for (bad, why) in [
            (
                "files:\n  - path: ../etc/shadow\n    package: x\n    sha256: aa\n",
                "plain relative path",
            ),
            (
                "files:\n  - path: usr/bin/git\n    package: x\n    sha256: zz\n",
                "64 hex",
            ),
            ("files:\n  - path: usr/bin/git\n    pakage: x\n", "line 3"),
            ("files: []\n", "no files"),
        ] {
            std::fs::write(&p, bad).unwrap();
            let e = load_lock(&p).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("inputs.lock"), "{bad}: {e}");
        }
    }
}
