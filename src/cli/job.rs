//! `seakeeper job run` (a job locally, exactly as CI runs it) and `seakeeper job render` (the
//! Kubernetes Job manifest CI would submit).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::config::{self, files::PipelineKind, pipeline::RunContext};
use crate::executor::local::{LocalConfig, LocalExecutor, Sandbox};
use crate::executor::{Executor as _, kubernetes};
use crate::git::files;
use crate::model::{JobSpec, JobState, ProjectName, Trust};

#[derive(Debug, Subcommand)]
pub(super) enum JobCommand {
    /// Run a job of this repository's .pipeline/config.yaml locally, exactly as CI would: a
    /// fresh workspace holding only the commit (never the working tree), only the declared
    /// environment, bubblewrap isolation when installed, the job's time limit. Prints the live
    /// log and exits with the job's status; Ctrl-C cancels it.
    Run(JobArgs),
    /// Print the Kubernetes Job manifest CI would submit for a job (YAML), to apply to your own
    /// cluster. A job that names secrets reads them from a Secret named as the Job (one key per
    /// secret), which CI makes from the config repo's sealed secrets; create your own.
    Render {
        #[command(flatten)]
        job: JobArgs,
        /// The namespace of untrusted jobs.
        #[arg(long, default_value = "seakeeper-untrusted")]
        untrusted_namespace: String,
        /// The namespace of trusted jobs.
        #[arg(long, default_value = "seakeeper-trusted")]
        trusted_namespace: String,
        /// seakeeper's own image by digest (NAME@sha256:...; a tag is refused), for the fetch
        /// and collect containers: what `seakeeper image self` built, as in
        /// `executor.seakeeper_image`.
        #[arg(long, value_name = "NAME@sha256:DIGEST")]
        seakeeper_image: String,
        /// The image to run in, for a job whose image a job it needs builds
        /// (`image: {from: <job>}`): the digest that job's run assembled.
        #[arg(long)]
        image: Option<String>,
    },
    /// (In a Kubernetes Job's collector container.) Wait for the job's end marker, store the
    /// outputs by content, and report them as JSON on stdout and in the termination log.
    Collect {
        /// The job's workspace.
        #[arg(long)]
        workspace: PathBuf,
        /// The file the job writes when it ends.
        #[arg(long)]
        wait_for: PathBuf,
        /// Also wait until no process of this uid is left (the job's containers, seen through
        /// the pod's shared process namespace), so a job cannot fake its end.
        #[arg(long)]
        wait_for_uid: Option<u32>,
        /// The content-addressed store (`sha256/<hex>` under it); without it no outputs are
        /// collected.
        #[arg(long)]
        store: Option<PathBuf>,
        /// Where this trust level's dependency caches are kept: each cache of `--cache-keys`
        /// is saved there if the job succeeded.
        #[arg(long, requires = "cache_keys")]
        caches_dir: Option<PathBuf>,
        /// The caches and their keys, as `job cache-restore` wrote them.
        #[arg(long)]
        cache_keys: Option<PathBuf>,
        /// An output glob (repeatable).
        #[arg(long = "output")]
        outputs: Vec<String>,
        /// Where Kubernetes reads the container's termination message.
        #[arg(long, default_value = "/dev/termination-log")]
        termination_log: PathBuf,
    },
    /// (In a Kubernetes Job's fetch container.) Place in the workspace what `SEAKEEPER_FETCH`
    /// names (JSON): the job's commit and the projects it requires, each fetched by git at
    /// exactly that commit and checked out without its `.git`; the output files of the jobs
    /// it needs, copied from the store and checked against their digests. Then restore the
    /// job's dependency caches (`SEAKEEPER_CACHES`, keyed with `SEAKEEPER_CACHE_IDENTITY`) and
    /// write their keys for the collector. No shell is involved.
    #[command(hide = true)]
    Fetch {
        /// The job's workspace (empty).
        #[arg(long)]
        workspace: PathBuf,
        /// The content-addressed store the inputs come from.
        #[arg(long)]
        store: Option<PathBuf>,
        /// This trust level's caches.
        #[arg(long, requires = "keys_out")]
        caches_dir: Option<PathBuf>,
        /// Where the caches' keys go (JSON).
        #[arg(long)]
        keys_out: Option<PathBuf>,
    },
    /// (Started by seakeeper.) Run the job prepared in DIR (its launch.json) detached from the
    /// seakeeper that started it, so a restarted seakeeper adopts it; record its end in
    /// DIR/state.json. SIGTERM or a DIR/cancel file cancels it.
    #[command(hide = true)]
    Supervise {
        /// The job's directory.
        dir: PathBuf,
        /// The job's lock, handed down open (else it is taken).
        #[arg(long)]
        lock_fd: Option<i32>,
    },
}

#[derive(Debug, Args)]
pub(super) struct JobArgs {
    /// The job's name.
    job: String,
    /// The repository (its git objects are read; the working tree is ignored).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The commit to run (a commit id, branch, tag or HEAD).
    #[arg(long, default_value = "HEAD")]
    rev: String,
    /// The pipeline (check, gate, post-merge, periodic); default: the first that has the job.
    #[arg(long)]
    pipeline: Option<String>,
    /// The config repo (path or URL): its templates, policies and enforced jobs apply.
    #[arg(long)]
    config_repo: Option<PathBuf>,
    /// The config repo revision.
    #[arg(long, default_value = "HEAD")]
    config_rev: String,
    /// The Gerrit project name (default: the repository directory's name).
    #[arg(long)]
    project: Option<String>,
    /// Where jobs and outputs are kept (default: ~/.cache/seakeeper/local).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Run without bubblewrap even when it is installed (implies --host-tools).
    #[arg(long)]
    no_sandbox: bool,
    /// Run the commands with this machine's tools (its /usr, read-only) instead of inside the
    /// job's image: results may differ from CI's.
    #[arg(long)]
    host_tools: bool,
    /// The build id (default: `local-<commit>-<time>`).
    #[arg(long)]
    build_id: Option<String>,
    /// A secret the job names, for `job run` of a trusted job: its value is read from your
    /// environment variable of the same name (never from the command line), given to the job
    /// and masked as `***` in its log. Repeatable.
    #[arg(long = "secret", value_name = "NAME")]
    secrets: Vec<String>,
}

/// Set by SIGINT or SIGTERM.
static INTERRUPTED: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

fn pipeline_kind(name: &str) -> anyhow::Result<PipelineKind> {
    PipelineKind::from_name(name).ok_or_else(|| {
        anyhow::anyhow!("--pipeline {name:?}: expected check, gate, post-merge or periodic")
    })
}

/// The registries of the config repo's `seakeeper.yaml` (where images are pulled from).
type Registries = std::collections::BTreeMap<String, config::files::RegistrySettings>;

/// Resolves the job exactly as CI does; returns the specs of the jobs it needs (directly or
/// not, in DAG order) and then its own, each with the names of the jobs it needs, the
/// opened repository, and the registries the config repo names.
#[allow(clippy::type_complexity)]
fn resolve(
    a: &JobArgs,
) -> anyhow::Result<(
    Vec<(JobSpec, Vec<String>)>,
    gix::ThreadSafeRepository,
    Registries,
)> {
    let repo = gix::discover(&a.repo)
        .with_context(|| format!("{}: not a git repository", a.repo.display()))?;
    let commit = files::resolve(&repo, &a.rev)?;
    let own = files::read_file(&repo, &commit, config::pipeline::PIPELINE_FILE)?;
    let project: ProjectName = match &a.project {
        Some(p) => p.parse()?,
        None => {
            let base = repo.workdir().unwrap_or_else(|| repo.path());
            let name = base
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "local".to_owned());
            name.trim_end_matches(".git")
                .parse()
                .context("the repository's directory name is not a project name; give --project")?
        }
    };
    let layout = match &a.config_repo {
        None => None,
        Some(path) => match super::pipeline::load_layout(path, &a.config_rev)? {
            Ok((_, l)) => Some(l),
            Err((c, errors)) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                bail!("the config repo at {c} is invalid");
            }
        },
    };
    // A repository without a pipeline file runs its central one, as the daemon does.
    let (file, text) = match own {
        Some(t) => (
            config::pipeline::PIPELINE_FILE.to_owned(),
            String::from_utf8(t).context("the pipeline file is not UTF-8")?,
        ),
        None => {
            let central = layout.as_ref().and_then(|l| l.central_pipeline(&project));
            let text = central.with_context(|| {
                format!(
                    "{} has no {} at {commit}, and no config repo with a central one \
                     (pipelines/{project}.yaml) was given",
                    a.repo.display(),
                    config::pipeline::PIPELINE_FILE
                )
            })?;
            (
                format!("{}{project}.yaml", config::central::DIR),
                text.to_owned(),
            )
        }
    };
    let resolved = config::pipeline::check(
        &file,
        &text,
        layout.as_ref().map(|_| &project),
        layout.as_ref(),
    )
    .map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::anyhow!("{file} is invalid")
    })?;
    let wanted = a.pipeline.as_deref().map(pipeline_kind).transpose()?;
    let (kind, job) = resolved
        .iter()
        .filter(|(k, _)| wanted.is_none_or(|w| w == **k))
        .find_map(|(k, jobs)| jobs.iter().find(|j| j.name == a.job).map(|j| (*k, j)))
        .with_context(|| {
            let names: Vec<String> = resolved
                .iter()
                .flat_map(|(k, jobs)| {
                    jobs.iter()
                        .map(move |j| format!("{}/{}", k.as_str(), j.name))
                })
                .collect();
            format!("no job {:?} (jobs: {})", a.job, names.join(", "))
        })?;
    let mut errors = Vec::new();
    let default_policies;
    let policies = match &layout {
        Some(l) => &l.policies,
        None => {
            default_policies = config::policies::resolve(&[], &mut errors)
                .expect("the shipped policies are valid");
            &default_policies
        }
    };
    let trust = if policies.is_trusted(kind) {
        Trust::Trusted
    } else {
        Trust::Untrusted
    };
    let commit_id: crate::model::CommitId = commit.to_string().parse()?;
    let build_id = match &a.build_id {
        Some(b) => b.parse().context("--build-id")?,
        None => format!(
            "local-{}-{}",
            &commit_id.as_str()[..12],
            crate::model::Timestamp::now().compact()
        )
        .parse()?,
    };
    let source = repo.path().display().to_string();
    if !job.requires.is_empty() {
        eprintln!(
            "warning: {} requires {}; `job run` checks out only this repository (run it \
             where .seakeeper/required/<project> holds them, or see the gate's report)",
            job.name,
            job.requires
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let ctx = RunContext {
        build_id,
        pipeline: kind.as_str(),
        project,
        change: None,
        source: &source,
        commit: commit_id,
        trust,
        required: Vec::new(),
    };
    // The jobs it needs, through their own needs, in the pipeline's (DAG) order.
    let all = &resolved[&kind];
    let mut wanted = std::collections::BTreeSet::from([job.name.clone()]);
    for j in all.iter().rev() {
        if wanted.contains(&j.name) {
            wanted.extend(j.needs.iter().cloned());
        }
    }
    let specs = all
        .iter()
        .filter(|j| wanted.contains(&j.name))
        .map(|j| {
            let mut spec = j.to_spec(&ctx);
            if let Some(from) = &j.image_from {
                // Named by its digest only once `from` ran in a build: `job run` says which
                // (and runs it only with --host-tools).
                spec.image = format!(
                    "(image {} that job {} assembles)",
                    from.name.as_ref().map_or("", |n| n.as_str()),
                    from.from
                );
            }
            (spec, j.needs.clone())
        })
        .collect();
    let registries = layout
        .as_ref()
        .map(|l| l.settings.registries.clone())
        .unwrap_or_default();
    Ok((specs, repo.into_sync(), registries))
}

/// The fetch plan from the environment: `SEAKEEPER_FETCH`, or its pieces `SEAKEEPER_FETCH_0`,
/// `_1` ... joined (a plan over what one variable may hold; see the Kubernetes manifest).
fn fetch_plan() -> anyhow::Result<crate::model::FetchPlan> {
    let var = |name: &str| -> anyhow::Result<Option<String>> {
        match std::env::var_os(name) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{name} is not UTF-8")),
        }
    };
    let text = match var("SEAKEEPER_FETCH")? {
        Some(t) => t,
        None => {
            let mut t = String::new();
            for i in 0.. {
                match var(&format!("SEAKEEPER_FETCH_{i}"))? {
                    Some(piece) => t.push_str(&piece),
                    None if i == 0 => bail!("SEAKEEPER_FETCH is not set"),
                    None => break,
                }
            }
            t
        }
    };
    serde_json::from_str(&text).context("SEAKEEPER_FETCH")
}

pub(super) fn run(cmd: JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::Run(a) => run_job(&a),
        JobCommand::Render {
            job,
            untrusted_namespace,
            trusted_namespace,
            seakeeper_image,
            image,
        } => {
            if !crate::model::job::is_pinned_image(&seakeeper_image) {
                bail!(
                    "--seakeeper-image {seakeeper_image:?}: must be pinned by digest \
                     (name@sha256:<64 lowercase hex>); a tag is refused"
                );
            }
            let (mut specs, _, _) = resolve(&job)?;
            let (mut spec, needs) = specs.pop().context("the job resolves to a spec")?;
            if let Some(image) = image {
                spec.image = image;
            } else if spec.image.starts_with('(') {
                bail!(
                    "{} runs in {}: its digest is known once that job ran in a build; pass \
                     --image <reference@sha256:...>",
                    spec.job,
                    spec.image.trim_matches(['(', ')'])
                );
            }
            if !needs.is_empty() {
                eprintln!(
                    "note: {} needs {}: in a build, the fetch container also copies their output \
                     files from the store into .seakeeper/inputs/<job>/ (their files are known \
                     once they ran)",
                    spec.job,
                    needs.join(", ")
                );
            }
            let settings = kubernetes::KubeSettings {
                untrusted_namespace,
                trusted_namespace,
                seakeeper_image,
                ..kubernetes::KubeSettings::default()
            };
            print!("{}", kubernetes::render_yaml(&spec, &settings)?);
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Supervise { dir, lock_fd } => {
            crate::executor::local::supervise(&dir, lock_fd).map_err(|e| anyhow::anyhow!(e))?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Fetch {
            workspace,
            store,
            caches_dir,
            keys_out,
        } => {
            let plan = fetch_plan()?;
            plan.validate()
                .map_err(|e| anyhow::anyhow!("SEAKEEPER_FETCH: {e}"))?;
            if !plan.inputs.is_empty() && store.is_none() {
                bail!("the job has inputs but no --store was given");
            }
            // git reads no configuration but its command line's (HOME is shared with the job).
            // SAFETY: no other thread runs yet in this short-lived process.
            unsafe {
                std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
                std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
            }
            let scratch = std::env::temp_dir();
            let stats =
                crate::git::workspace::fetch_into(&plan.source, &plan.commit, &workspace, &scratch)
                    .map_err(anyhow::Error::msg)?;
            eprintln!("fetched {} ({} files)", plan.commit, stats.files);
            for r in &plan.required {
                let into = crate::store::place::create_new_dir_within(&workspace, &r.path())
                    .map_err(anyhow::Error::msg)?;
                crate::git::workspace::fetch_into(&r.source, &r.commit, &into, &scratch)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", r.project))?;
                eprintln!("fetched {} at {}", r.project, r.commit);
            }
            if let (false, Some(store)) = (plan.inputs.is_empty(), &store) {
                crate::executor::local::place_inputs(&plan.inputs, &workspace, store)
                    .map_err(anyhow::Error::msg)?;
            }
            if let (Some(dir), Some(keys_out)) = (caches_dir, keys_out) {
                let caches: Vec<crate::model::CacheSpec> = serde_json::from_str(
                    &std::env::var("SEAKEEPER_CACHES").context("SEAKEEPER_CACHES is not set")?,
                )
                .context("SEAKEEPER_CACHES")?;
                let identity = std::env::var("SEAKEEPER_CACHE_IDENTITY")
                    .context("SEAKEEPER_CACHE_IDENTITY is not set")?;
                let keys = crate::executor::caches::restore_all(
                    &identity,
                    &dir,
                    &workspace,
                    &caches,
                    &mut |l| eprintln!("{l}"),
                );
                std::fs::write(&keys_out, serde_json::to_vec(&keys)?)
                    .with_context(|| keys_out.display().to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Collect {
            workspace,
            wait_for,
            wait_for_uid,
            store,
            outputs,
            termination_log,
            caches_dir,
            cache_keys,
        } => {
            let mut seen = false;
            loop {
                let running = wait_for_uid.is_some_and(processes_of);
                seen |= running;
                let ended = wait_for.exists() || (wait_for_uid.is_some() && seen);
                if ended && !running {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            // The job's exit status, as its trap wrote it: caches are saved only after a success.
            let succeeded = std::fs::read_to_string(&wait_for).is_ok_and(|s| s.trim() == "0");
            if let (Some(dir), Some(keys)) = (&caches_dir, &cache_keys) {
                let keys: Vec<(crate::model::CacheSpec, String)> = match std::fs::read(keys) {
                    Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
                for (c, k) in keys.iter().filter(|_| succeeded) {
                    eprintln!(
                        "{}",
                        crate::executor::caches::save_line(dir, k, &workspace, c)
                    );
                }
            }
            let files = match &store {
                Some(store) => crate::executor::local::collect_outputs(&workspace, &outputs, store)
                    .map_err(|e| anyhow::anyhow!(e))?,
                None => Vec::new(),
            };
            let json = serde_json::to_string(&files)?;
            println!("{json}");
            // Kubernetes keeps 4096 bytes of a termination message.
            let message = if json.len() <= 4096 {
                json
            } else {
                format!(
                    "{{\"error\":\"{} outputs do not fit in a termination message; see the collector's log\"}}",
                    files.len()
                )
            };
            if termination_log.parent().is_some_and(Path::exists) {
                let _ = std::fs::write(&termination_log, &message);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn default_state() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("seakeeper").join("local")
}

fn run_job(a: &JobArgs) -> anyhow::Result<ExitCode> {
    let (specs, repo, registries) = resolve(a)?;
    let state = a.state.clone().unwrap_or_else(default_state);
    let mut config = LocalConfig::new(&state);
    if a.no_sandbox {
        config.sandbox = Sandbox::None;
    }
    let mut values = std::collections::BTreeMap::new();
    for name in &a.secrets {
        let value = std::env::var(name).map_err(|_| {
            anyhow::anyhow!(
                "--secret {name}: set the environment variable {name} to its value (values are \
                 never taken from the command line)"
            )
        })?;
        values.insert(
            name.clone(),
            crate::secrets::SecretValue::new(name, &value)?,
        );
    }
    config.secrets = Arc::new(crate::secrets::FixedSecrets::new(values));
    let (first, _) = specs.first().context("the job resolves to a spec")?;
    let commit = gix::ObjectId::from_hex(first.commit.as_str().as_bytes())?;
    let prepare: crate::executor::local::Prepare = Arc::new(move |_spec, dir| {
        crate::git::checkout::checkout(&repo, &commit, dir, 4)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let mut exec = LocalExecutor::new(config, prepare)?;
    if let Some(w) = exec.warning() {
        eprintln!("warning: {w}");
    }
    if a.host_tools || a.no_sandbox {
        eprintln!(
            "warning: --host-tools: the commands run with this machine's tools, not inside their \
             images; the result may differ from CI's"
        );
    } else {
        if let Some((s, _)) = specs.iter().find(|(s, _)| s.image.starts_with('(')) {
            bail!(
                "{} runs in {}: its digest is known once that job ran in a build; run it with \
                 --host-tools here",
                s.job,
                s.image.trim_matches(['(', ')'])
            );
        }
        let mut source = crate::registry::pull::ImageSource::under(&state)?;
        source.registries = registries;
        exec = exec.with_images(crate::daemon::local_images(source));
    }
    let exec = Arc::new(exec);
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, INTERRUPTED.clone())?;
    }
    // The jobs it needs first, as a build runs them; their outputs are the next one's inputs.
    let mut ended: Vec<(String, JobState)> = Vec::new();
    for (mut spec, needs) in specs {
        if let Some((need, state)) = ended
            .iter()
            .find(|(n, s)| needs.contains(n) && *s != JobState::Succeeded)
        {
            eprintln!("seakeeper: {} skipped: {need} did not succeed", spec.job);
            let state = state.clone();
            ended.push((spec.job.clone(), state));
            continue;
        }
        for need in &needs {
            let key = crate::model::JobKey {
                build_id: spec.build_id.clone(),
                job: need.clone(),
            };
            spec.inputs.push(crate::model::JobInputs {
                job: need.clone(),
                files: exec.outputs(&key)?,
            });
        }
        let state = run_one(&exec, &spec)?;
        ended.push((spec.job.clone(), state));
    }
    let state = ended
        .pop()
        .map(|(_, s)| s)
        .context("the job resolves to a spec")?;
    Ok(match state {
        JobState::Succeeded => ExitCode::SUCCESS,
        JobState::Failed {
            exit_code: Some(c), ..
        } => ExitCode::from(c.clamp(1, 255) as u8),
        JobState::TimedOut => ExitCode::from(124),
        JobState::Cancelled => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    })
}

/// Runs one job, its log on stdout, and returns how it ended.
fn run_one(exec: &Arc<LocalExecutor>, spec: &JobSpec) -> anyhow::Result<JobState> {
    eprintln!(
        "seakeeper: {} {} of {} at {} ({}, time limit {} s)",
        spec.pipeline,
        spec.job,
        spec.project,
        &spec.commit.as_str()[..12],
        spec.trust.as_str(),
        spec.timeout_seconds
    );
    let key = spec.key();
    exec.start(spec)?;
    let (e2, k2) = (exec.clone(), key.clone());
    let canceller = std::thread::spawn(move || {
        loop {
            if INTERRUPTED.load(Ordering::SeqCst) {
                eprintln!("seakeeper: interrupted, cancelling the job");
                let _ = e2.cancel(&k2);
                return;
            }
            if e2.state(&k2).ok().flatten().is_some_and(|s| s.is_final()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    {
        use std::io::Write as _;
        let stdout = std::io::stdout();
        exec.logs(&key, true, &mut |line| {
            let mut out = stdout.lock();
            let _ = writeln!(out, "{}", line.text);
            let _ = out.flush();
        })?;
    }
    let state = exec.wait(&key, None)?;
    let _ = canceller.join();
    for o in exec.outputs(&key)? {
        eprintln!("output: {} {} ({} bytes)", o.path, o.digest, o.size);
    }
    eprintln!("seakeeper: {}", serde_json::to_string(&state)?);
    Ok(state)
}

/// Whether any process of `uid` is running (read from /proc).
fn processes_of(uid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| {
            std::fs::read_to_string(e.path().join("status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|u| u.split_whitespace().next().map(str::to_owned))
                })
                .is_some_and(|u| u == uid.to_string())
        })
}
