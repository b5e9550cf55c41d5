//! Applying an image's layers to a root filesystem: each tar entry's path resolved inside the
//! root (the root's own symbolic links followed as the job would see them, never out of it),
//! whiteouts and opaque directories, hard links within the root, file modes kept; a `..`
//! component, a device node or a setuid or setgid file refuses the layer.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use super::unpack::{UnpackError, io_err};
use crate::model::Digest;

/// Removes a tree, making its directories writable first (an image's read-only directories).
pub(super) fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            fn open_up(p: &Path) {
                if let Ok(m) = std::fs::symlink_metadata(p)
                    && m.is_dir()
                {
                    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
                    if let Ok(entries) = std::fs::read_dir(p) {
                        for e in entries.flatten() {
                            open_up(&e.path());
                        }
                    }
                }
            }
            open_up(path);
            std::fs::remove_dir_all(path)
        }
    }
}

/// A tar time stamp as a time (a hostile one past what the system can hold is the epoch).
fn time_of(mtime: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(mtime))
        .unwrap_or(std::time::UNIX_EPOCH)
}

pub(super) fn set_mtime(path: &Path, mtime: u64) -> std::io::Result<()> {
    std::fs::File::open(path)?.set_times(std::fs::FileTimes::new().set_modified(time_of(mtime)))
}

/// The most an extension entry (PAX `x`/`g`, GNU long name `L`/`K`) may hold: the tar reader
/// keeps them whole in memory.
const MAX_EXTENSION_BYTES: u64 = 1 << 20;

/// Watches a tar stream as it passes: every decompressed byte counts against
/// [`MAX_UNPACKED_BYTES`] (a decompression bomb stops here), and an extension entry over
/// [`MAX_EXTENSION_BYTES`] is refused before the tar reader would allocate it.
pub(super) struct TarGuard<R> {
    inner: R,
    /// Bytes of the current entry's data and padding still to pass.
    skip: u64,
    header: Vec<u8>,
    total: u64,
}

impl<R> TarGuard<R> {
    pub(super) fn new(inner: R) -> TarGuard<R> {
        TarGuard {
            inner,
            skip: 0,
            header: Vec::with_capacity(512),
            total: 0,
        }
    }
}

/// A tar header's size field: octal text, or base-256 when its first byte has the high bit.
fn header_size(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = 0;
        for (i, b) in field.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { *b };
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .filter(|b| *b != 0 && *b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.total += n as u64;
        if self.total > MAX_UNPACKED_BYTES {
            return Err(std::io::Error::other(format!(
                "the layer unpacks to more than {MAX_UNPACKED_BYTES} bytes"
            )));
        }
        let mut rest = &out[..n];
        while !rest.is_empty() {
            if self.skip > 0 {
                let k = rest
                    .len()
                    .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                self.skip -= k as u64;
                rest = &rest[k..];
                continue;
            }
            let k = rest.len().min(512 - self.header.len());
            self.header.extend_from_slice(&rest[..k]);
            rest = &rest[k..];
            if self.header.len() == 512 {
                let size = header_size(&self.header[124..136])
                    .ok_or_else(|| std::io::Error::other("a tar header with an unreadable size"))?;
                if matches!(self.header[156], b'x' | b'g' | b'L' | b'K')
                    && size > MAX_EXTENSION_BYTES
                {
                    return Err(std::io::Error::other(format!(
                        "an extension header of {size} bytes (at most {MAX_EXTENSION_BYTES})"
                    )));
                }
                self.skip = size.div_ceil(512).saturating_mul(512);
                self.header.clear();
            }
        }
        Ok(n)
    }
}

/// The state of one unpack.
pub(super) struct Unpacker {
    pub(super) root: PathBuf,
    pub(super) image: Digest,
    pub(super) layer: Digest,
    /// Directories' modes and times, applied at the end.
    pub(super) dir_modes: BTreeMap<PathBuf, (u32, u64)>,
    /// What this layer wrote (an opaque directory keeps it).
    pub(super) written: HashSet<PathBuf>,
    pub(super) buf: Vec<u8>,
    /// Bytes and entries written so far, all layers together, against the limits.
    pub(super) total_bytes: u64,
    pub(super) total_entries: u64,
}

/// The most an unpacked image may hold: a layer that inflates past it (a decompression bomb)
/// refuses the image instead of filling the disk.
pub const MAX_UNPACKED_BYTES: u64 = 64 << 30;
/// The most entries an image's layers may hold together.
pub const MAX_ENTRIES: u64 = 1_000_000;

/// The components of a path in a layer, or why it is refused.
fn entry_components(raw: &[u8]) -> Result<Vec<OsString>, String> {
    if raw.contains(&0) {
        return Err("a NUL in the path".into());
    }
    let mut out = Vec::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n.to_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                return Err("the path has a `..` component and could escape the root".into());
            }
            Component::Prefix(_) => return Err("not a Unix path".into()),
        }
    }
    Ok(out)
}

/// The directory `comps` names inside `root`, following symbolic links as the root's own
/// (an absolute target starts again at the root, `..` stops at it); missing directories are
/// made when `create`.
pub(super) fn resolve_dir(
    root: &Path,
    comps: &[OsString],
    create: bool,
) -> Result<PathBuf, String> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = comps.iter().cloned().collect();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        if c.is_empty() || c == "." {
            continue;
        }
        if c == ".." {
            resolved.pop();
            continue;
        }
        let mut here = root.to_owned();
        here.extend(&resolved);
        here.push(&c);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err("too many levels of symbolic links".into());
                }
                let target = std::fs::read_link(&here).map_err(|e| e.to_string())?;
                if target.is_absolute() {
                    resolved.clear();
                }
                let mut next: VecDeque<OsString> = target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(n) => Some(n.to_owned()),
                        Component::ParentDir => Some(OsString::from("..")),
                        _ => None,
                    })
                    .collect();
                next.extend(pending.drain(..));
                pending = next;
            }
            Ok(m) if m.is_dir() => resolved.push(c),
            Ok(_) => {
                return Err(format!(
                    "{} is not a directory",
                    Path::new("/")
                        .join(resolved.iter().collect::<PathBuf>())
                        .join(&c)
                        .display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                std::fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&here)
                    .map_err(|e| format!("{}: {e}", here.display()))?;
                resolved.push(c);
            }
            Err(e) => return Err(format!("{}: {e}", here.display())),
        }
    }
    let mut out = root.to_owned();
    out.extend(&resolved);
    Ok(out)
}

/// Reads a small file inside `root` without following links out of it.
pub(super) fn read_in_root(root: &Path, path: &str) -> Option<String> {
    let comps: Vec<OsString> = path.split('/').map(OsString::from).collect();
    let (name, parents) = comps.split_last()?;
    let dir = resolve_dir(root, parents, false).ok()?;
    // Not blocking on a FIFO, not following a link; only a regular file is read.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(name))
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    f.take(1 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Makes `rel` a real directory (or, with `file`, its last segment a real file) of `root`:
/// a symbolic link on the way is replaced. Mount points must not be links: bubblewrap makes
/// them while the host's root is still reachable, and would follow one out of the image.
pub(super) fn real_mount_point(root: &Path, rel: &str, file: bool) -> std::io::Result<()> {
    let segments: Vec<&str> = rel.split('/').collect();
    let mut p = root.to_owned();
    for (i, s) in segments.iter().enumerate() {
        p.push(s);
        let last_file = file && i + 1 == segments.len();
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&p)?,
            Ok(m) if m.is_dir() && !last_file => continue,
            Ok(m) if m.is_file() && last_file => continue,
            Ok(_) => remove_any(&p)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if last_file {
            std::fs::File::create(&p)?;
        } else {
            std::fs::DirBuilder::new().mode(0o755).create(&p)?;
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (not following a link).
fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => remove_tree(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Unpacker {
    pub(super) fn refuse(&self, path: &str, message: String) -> UnpackError {
        UnpackError::Refused {
            image: self.image.clone(),
            layer: self.layer.clone(),
            path: path.to_owned(),
            message,
        }
    }

    /// Applies one layer's tar stream.
    pub(super) fn apply(&mut self, reader: impl Read) -> Result<(), UnpackError> {
        let mut archive = tar::Archive::new(TarGuard::new(reader));
        let entries = archive
            .entries()
            .map_err(|e| self.refuse("", format!("not a tar stream: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| self.refuse("", format!("a broken tar entry: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
            ) {
                continue;
            }
            self.total_entries += 1;
            if self.total_entries > MAX_ENTRIES {
                return Err(self.refuse(&shown, format!("more than {MAX_ENTRIES} entries")));
            }
            let comps = entry_components(&raw).map_err(|m| self.refuse(&shown, m))?;
            let Some((name, parents)) = comps.split_last() else {
                continue; // The root itself.
            };
            let name_bytes = name.as_bytes();
            if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
                // Whiteouts hide what lower layers have; a missing parent hides nothing.
                let Ok(parent) = resolve_dir(&self.root, parents, false) else {
                    continue;
                };
                if hidden == b".wh..opq" {
                    self.make_opaque(&parent)
                        .map_err(|e| self.refuse(&shown, e.to_string()))?;
                    continue;
                }
                if hidden.is_empty() || hidden == b"." || hidden == b".." {
                    return Err(self.refuse(&shown, "a whiteout of no name".into()));
                }
                let target = parent.join(OsStr::from_bytes(hidden));
                if !self.written.contains(&target) {
                    remove_any(&target).map_err(|e| self.refuse(&shown, e.to_string()))?;
                }
                continue;
            }
            let parent =
                resolve_dir(&self.root, parents, true).map_err(|m| self.refuse(&shown, m))?;
            self.mark_written(&parent);
            let path = parent.join(name);
            let header = entry.header();
            let mode = header
                .mode()
                .map_err(|e| self.refuse(&shown, e.to_string()))?;
            let mtime = header.mtime().unwrap_or(0);
            match kind {
                tar::EntryType::Directory => {
                    match std::fs::symlink_metadata(&path) {
                        Ok(m) if m.is_dir() => {}
                        _ => {
                            remove_any(&path).map_err(|e| io_err(&path, e))?;
                            std::fs::DirBuilder::new()
                                .mode(0o755)
                                .create(&path)
                                .map_err(|e| io_err(&path, e))?;
                        }
                    }
                    // A setgid directory only passes its group on; harmless, and common.
                    self.dir_modes
                        .insert(path.clone(), ((mode & 0o1777) | 0o700, mtime));
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if mode & 0o6000 != 0 {
                        return Err(self.refuse(
                            &shown,
                            format!("mode {mode:o}: setuid and setgid files are not run"),
                        ));
                    }
                    remove_any(&path).map_err(|e| io_err(&path, e))?;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(&path)
                        .map_err(|e| io_err(&path, e))?;
                    loop {
                        let n = entry
                            .read(&mut self.buf)
                            .map_err(|e| self.refuse(&shown, format!("reading: {e}")))?;
                        if n == 0 {
                            break;
                        }
                        self.total_bytes += n as u64;
                        if self.total_bytes > MAX_UNPACKED_BYTES {
                            return Err(self.refuse(
                                &shown,
                                format!(
                                    "the image unpacks to more than {MAX_UNPACKED_BYTES} bytes"
                                ),
                            ));
                        }
                        f.write_all(&self.buf[..n]).map_err(|e| io_err(&path, e))?;
                    }
                    let _ = f.set_times(std::fs::FileTimes::new().set_modified(time_of(mtime)));
                    f.set_permissions(std::fs::Permissions::from_mode(mode & 0o1777))
                        .map_err(|e| io_err(&path, e))?;
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| {
                            self.refuse(&shown, "a symbolic link without a target".into())
                        })?
                        .into_owned();
                    remove_any(&path).map_err(|e| io_err(&path, e))?;
                    std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                        .map_err(|e| io_err(&path, e))?;
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| self.refuse(&shown, "a hard link without a target".into()))?
                        .into_owned();
                    let tcomps = entry_components(&target)
                        .map_err(|m| self.refuse(&shown, format!("its link target: {m}")))?;
                    let Some((tname, tparents)) = tcomps.split_last() else {
                        return Err(self.refuse(&shown, "a hard link to the root".into()));
                    };
                    let tdir = resolve_dir(&self.root, tparents, false)
                        .map_err(|m| self.refuse(&shown, format!("its link target: {m}")))?;
                    let source = tdir.join(tname);
                    match std::fs::symlink_metadata(&source) {
                        Ok(m) if !m.is_dir() => {}
                        Ok(_) => {
                            return Err(self.refuse(&shown, "a hard link to a directory".into()));
                        }
                        Err(e) => {
                            return Err(self.refuse(
                                &shown,
                                format!(
                                    "its link target {}: {e}",
                                    String::from_utf8_lossy(&target)
                                ),
                            ));
                        }
                    }
                    if source != path {
                        remove_any(&path).map_err(|e| io_err(&path, e))?;
                        std::fs::hard_link(&source, &path).map_err(|e| io_err(&path, e))?;
                    }
                }
                tar::EntryType::Fifo => {
                    remove_any(&path).map_err(|e| io_err(&path, e))?;
                    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
                        .map_err(|e| io_err(&path, e))?;
                    // SAFETY: mkfifo reads the NUL-terminated path it is given.
                    if unsafe { libc::mkfifo(c.as_ptr(), (mode & 0o777) as libc::mode_t) } != 0 {
                        return Err(io_err(&path, std::io::Error::last_os_error()));
                    }
                }
                tar::EntryType::Char | tar::EntryType::Block => {
                    return Err(
                        self.refuse(&shown, "device nodes are not allowed in an image".into())
                    );
                }
                other => {
                    return Err(self.refuse(
                        &shown,
                        format!("entries of type {other:?} are not unpacked"),
                    ));
                }
            }
            self.written.insert(path);
        }
        Ok(())
    }

    /// Records `dir` and its parents up to the root as written by this layer.
    fn mark_written(&mut self, dir: &Path) {
        let mut p = dir.to_owned();
        while p.starts_with(&self.root) && p != self.root {
            if !self.written.insert(p.clone()) {
                break;
            }
            if !p.pop() {
                break;
            }
        }
    }

    /// Removes what lower layers put in `dir`, keeping what this layer wrote.
    fn make_opaque(&self, dir: &Path) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if !self.written.contains(&p) {
                remove_any(&p)?;
            } else if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                // Kept for what this layer put in it; what lower layers put there goes.
                self.make_opaque(&p)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::unpack::{ImageConfig, JOB_UID};

    /// A tar stream from (path, kind, mode, content or link target).
    fn layer(entries: &[(&str, tar::EntryType, u32, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, mode, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_mtime(1);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
                    // Raw path bytes, `..` included, as an attacker's tar has them.
                    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                    h.set_cksum();
                    b.append(&h, std::io::empty()).expect("append");
                }
                _ => {
                    h.set_size(data.len() as u64);
                    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                    h.set_cksum();
                    b.append(&h, *data).expect("append");
                }
            }
        }
        b.into_inner().expect("tar")
    }

    fn unpacker(root: &Path) -> Unpacker {
        Unpacker {
            root: root.to_owned(),
            image: Digest::of(b"image"),
            layer: Digest::of(b"layer"),
            dir_modes: BTreeMap::new(),
            written: HashSet::new(),
            buf: vec![0; 4096],
            total_bytes: 0,
            total_entries: 0,
        }
    }

    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

    #[test]
    fn whiteouts_opaque_dirs_and_links() {
        let t = tempfile::tempdir().expect("tmp");
        let mut u = unpacker(t.path());
        u.apply(
            &layer(&[
                ("etc/", D, 0o755, b""),
                ("etc/a", F, 0o644, b"a"),
                ("etc/b", F, 0o644, b"b"),
                ("lib/", D, 0o755, b""),
                ("lib/old", F, 0o644, b"old"),
                ("lib/keep", F, 0o755, b"keep"),
            ])[..],
        )
        .expect("layer 1");
        u.written.clear();
        u.apply(
            &layer(&[
                ("etc/.wh.a", F, 0o644, b""),
                ("lib/.wh..wh..opq", F, 0o644, b""),
                ("lib/new", F, 0o600, b"new"),
                ("bin", S, 0o777, b"/usr/bin"),
                ("bin/tool", F, 0o755, b"#!"),
                ("etc/b2", H, 0o644, b"etc/b"),
            ])[..],
        )
        .expect("layer 2");
        let r = t.path();
        assert!(!r.join("etc/a").exists());
        assert_eq!(std::fs::read(r.join("etc/b2")).expect("b2"), b"b");
        assert!(!r.join("lib/old").exists() && !r.join("lib/keep").exists());
        assert_eq!(std::fs::read(r.join("lib/new")).expect("new"), b"new");
        let mode = std::fs::metadata(r.join("lib/new"))
            .expect("m")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Written through the root's own link: /bin -> /usr/bin stays inside the root.
        assert_eq!(std::fs::read(r.join("usr/bin/tool")).expect("tool"), b"#!");
    }

    #[test]
    fn escapes_devices_and_setuid_are_refused() {
        let t = tempfile::tempdir().expect("tmp");
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).expect("dir");
        let root = t.path().join("root");
        std::fs::create_dir(&root).expect("dir");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (layer(&[("../outside/x", F, 0o644, b"x")]), "`..`"),
            (layer(&[("a/../../outside/x", F, 0o644, b"x")]), "`..`"),
            (
                layer(&[("dev/null", tar::EntryType::Char, 0o666, b"")]),
                "device",
            ),
            (
                layer(&[("dev/sda", tar::EntryType::Block, 0o666, b"")]),
                "device",
            ),
            (layer(&[("bin/su", F, 0o4755, b"x")]), "setuid"),
            (layer(&[("bin/wall", F, 0o2755, b"x")]), "setuid"),
            (layer(&[("h", H, 0o644, b"../outside/x")]), "`..`"),
        ];
        for (bytes, why) in cases {
            let err = unpacker(&root)
                .apply(&bytes[..])
                .expect_err(why)
                .to_string();
            assert!(err.contains(why) && err.contains("refused"), "{err}");
        }
        // A link pointing out of the root is followed as the job would: inside it.
        let mut u = unpacker(&root);
        u.apply(
            &layer(&[
                ("esc", S, 0o777, b"../../outside"),
                ("esc/x", F, 0o644, b"x"),
            ])[..],
        )
        .expect("inside");
        assert!(!outside.join("x").exists());
        assert!(root.join("outside/x").exists());
    }

    #[test]
    fn user_names_resolve_in_the_image_and_root_becomes_the_job_uid() {
        let t = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(t.path().join("etc")).expect("etc");
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\npg:x:70:71::/:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(t.path().join("etc/group"), "staff:x:50:\n").expect("group");
        let ids = |u: &str| {
            ImageConfig {
                user: u.into(),
                ..Default::default()
            }
            .ids(t.path())
        };
        assert_eq!(ids(""), Ok((JOB_UID, JOB_UID)));
        assert_eq!(ids("root"), Ok((JOB_UID, JOB_UID)));
        assert_eq!(ids("pg"), Ok((70, 71)));
        assert_eq!(ids("1000:staff"), Ok((1000, 50)));
        assert!(ids("nobody-here").is_err());
    }
}
