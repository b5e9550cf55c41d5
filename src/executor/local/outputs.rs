//! A job's outputs, copied from its workspace into the content-addressed store without ever
//! following a symlink; and the outputs of the jobs it needs, copied from the store into its
//! workspace (its inputs).

use super::*;

/// Copies the files matching `globs` into the store (by SHA-256) and lists them. Symlinks are
/// never followed.
pub fn collect_outputs(
    workspace: &Path,
    globs: &[String],
    store: &Path,
) -> Result<Vec<OutputFile>, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let blobs = crate::store::BlobStore::new(store);
    std::fs::create_dir_all(crate::store::blob_dir(store))
        .map_err(|e| format!("{}: {e}", store.display()))?;
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::io::AsRawFd as _;
    // Every directory and file is opened relative to its parent's open descriptor, never
    // following a symlink, so a job that swaps a path for a symlink (to /proc/self/environ,
    // to the store) cannot make seakeeper read or write outside the workspace.
    let open_dir = |path: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
            .open(path)
    };
    let via = |dir: &std::fs::File| PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut out = Vec::new();
    let root = open_dir(workspace).map_err(|e| format!("{}: {e}", workspace.display()))?;
    let mut stack: Vec<(std::fs::File, String)> = vec![(root, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(via(&dir)).map_err(|e| format!("{prefix}: {e}"))?;
        for e in entries.flatten() {
            let ft = match e.file_type() {
                Ok(t) => t,
                Err(_) => continue,
            };
            let name = e.file_name();
            let rel = if prefix.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{prefix}/{}", name.to_string_lossy())
            };
            if ft.is_dir() {
                if let Ok(d) = open_dir(&via(&dir).join(&name)) {
                    stack.push((d, rel));
                }
                continue;
            }
            if !ft.is_file() || !globs.iter().any(|g| output_glob_matches(g, &rel)) {
                continue;
            }
            let bytes = {
                use std::io::Read as _;
                let Ok(mut f) = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(via(&dir).join(&name))
                else {
                    continue;
                };
                if !f.metadata().map_err(|e| format!("{rel}: {e}"))?.is_file() {
                    continue;
                }
                let mut b = Vec::new();
                f.read_to_end(&mut b).map_err(|e| format!("{rel}: {e}"))?;
                b
            };
            let digest = blobs
                .put(&bytes)
                .map_err(|e| format!("storing {rel}: {e}"))?;
            let executable = std::fs::symlink_metadata(via(&dir).join(&name))
                .map(|m| m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            out.push(OutputFile {
                path: rel,
                digest,
                size: bytes.len() as u64,
                executable,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Copies the output files of the jobs `spec` needs from the store into the workspace, each
/// under `.seakeeper/inputs/<job>/` at its path in that job's workspace, before any command
/// runs (so nothing the job does can redirect these writes). A path that is not a plain
/// relative path, or a blob the store does not hold, fails the job.
/// Each file's content is checked against its digest as it is copied (on Kubernetes the store
/// is a shared volume).
pub fn place_inputs(
    inputs: &[crate::model::JobInputs],
    workspace: &Path,
    store: &Path,
) -> Result<(), String> {
    for input in inputs {
        if input.job.contains('/') || !crate::model::job::is_safe_relative_path(&input.job) {
            return Err(format!("inputs of {:?}: not a job name", input.job));
        }
        // Made new (a directory the checked-out tree put there is refused), then each file
        // created new below it: no link from the tree can redirect these writes.
        let root = crate::store::place::create_new_dir_within(workspace, &input.path())?;
        for f in &input.files {
            if !crate::model::job::is_safe_relative_path(&f.path) {
                return Err(format!(
                    "input {:?} of {}: not a relative path",
                    f.path, input.job
                ));
            }
            let mode = if f.executable { 0o755 } else { 0o644 };
            crate::store::place::copy_blob_within(store, &f.digest, &root, &f.path, mode, f.size)
                .map_err(|e| format!("input {} of {} ({}): {e}", f.path, input.job, f.digest))?;
        }
    }
    Ok(())
}
