//! The Kubernetes executor: one `batch/v1` Job per job, in the namespace of its trust level,
//! labelled with build id, job, project and change (exact values in annotations, since label
//! values cannot hold `/`); `activeDeadlineSeconds` from the timeout, `backoffLimit: 0`,
//! `ttlSecondsAfterFinished`, no service-account token, non-root, no privilege escalation, all
//! capabilities dropped, RuntimeDefault seccomp. An init container (seakeeper's own image, which
//! carries git) fetches exactly the commit; the job's container runs its commands; a collector
//! container (seakeeper's image again), the only one given the artifact store's credentials,
//! waits for the job's end marker and stores the outputs.
//!
//! seakeeper's Jobs are watched once per namespace, by label, into a store that `state` and
//! `wait` read (`watch`: kube's runtime watcher, which re-lists on 410 Gone and reconnects);
//! pod logs are followed, cancel deletes with foreground propagation, and a restarted daemon
//! adopts Jobs by label ([`Executor::list`]).
//!
//! - `manifest`: the Job and NetworkPolicy of a job, and a Job's state;
//! - `watch`: the store of watched Jobs;
//! - `doctor`: the conformance check of a cluster (`seakeeper doctor --kubernetes`).

pub mod doctor;
mod manifest;
mod watch;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::AsyncBufReadExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};

use manifest::MANAGED_BY;
pub use manifest::{
    DEFAULT_SEAKEEPER_IMAGE, KubeSettings, job_name, job_state, manifest, namespace,
    network_policy, render_yaml,
};
use watch::{JobStore, Seen, key_of};

use super::{ExecError, Executor, LogLine};
use crate::model::{JobKey, JobSpec, JobState, OutputFile};

/// The Kubernetes executor.
pub struct KubeExecutor {
    client: kube::Client,
    settings: KubeSettings,
    runtime: tokio::runtime::Runtime,
    cancelled: Mutex<HashSet<JobKey>>,
    store: Arc<JobStore>,
    /// Where trusted jobs get the values of the secrets they name (put in a Secret of their
    /// own, owned by their Job).
    secrets: Arc<dyn crate::secrets::SecretSource>,
}

/// A Job deleted before it ended, not by seakeeper: it may have run partly.
fn deleted() -> JobState {
    JobState::Lost {
        reason: "its Job was deleted before it ended".into(),
    }
}

fn kube_err(context: &str, e: impl std::fmt::Display) -> ExecError {
    ExecError::Backend(format!("{context}: {e}"))
}

impl KubeExecutor {
    /// An executor talking to the API server at `url` (plain HTTP only for tests on loopback;
    /// use [`KubeExecutor::infer`] for a kubeconfig or in-cluster credentials).
    pub fn connect(url: &str, settings: KubeSettings) -> Result<KubeExecutor, ExecError> {
        let uri: http::Uri = url.parse().map_err(|e| kube_err(url, e))?;
        Self::with_config(kube::Config::new(uri), settings)
    }

    /// An executor using the kubeconfig or the in-cluster service account.
    pub fn infer(settings: KubeSettings) -> Result<KubeExecutor, ExecError> {
        let runtime = runtime()?;
        let config = runtime
            .block_on(kube::Config::infer())
            .map_err(|e| kube_err("kubernetes configuration", e))?;
        drop(runtime);
        Self::with_config(config, settings)
    }

    fn with_config(
        config: kube::Config,
        settings: KubeSettings,
    ) -> Result<KubeExecutor, ExecError> {
        // Every Job's fetch and collect steps run this image: only ever by digest.
        if !crate::model::job::is_pinned_image(&settings.seakeeper_image) {
            return Err(ExecError::Backend(format!(
                "seakeeper's image {:?} is not pinned by digest (name@sha256:<64 hex>); \
                 a tag is refused (executor.seakeeper_image in seakeeper.yaml)",
                settings.seakeeper_image
            )));
        }
        let runtime = runtime()?;
        let client = {
            let _guard = runtime.enter();
            kube::Client::try_from(config).map_err(|e| kube_err("kubernetes client", e))?
        };
        let store = Arc::new(JobStore::new(&[
            &settings.untrusted_namespace,
            &settings.trusted_namespace,
        ]));
        for ns in store.namespaces() {
            let (store, api, ns) = (
                store.clone(),
                Api::<Job>::namespaced(client.clone(), ns),
                ns.clone(),
            );
            runtime.spawn(async move { store.watch(api, ns).await });
        }
        Ok(KubeExecutor {
            client,
            settings,
            runtime,
            cancelled: Mutex::new(HashSet::new()),
            store,
            secrets: Arc::new(crate::secrets::FixedSecrets::none()),
        })
    }

    /// Jobs get their secrets' values from `source` (none by default: a job that names a
    /// secret is refused).
    pub fn with_secrets(mut self, source: Arc<dyn crate::secrets::SecretSource>) -> KubeExecutor {
        self.secrets = source;
        self
    }

    fn secrets_api(&self, ns: &str) -> Api<k8s_openapi::api::core::v1::Secret> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The values in the job's own Secret, to mask in its log (none when it has none).
    async fn values_to_mask(&self, ns: &str, name: &str) -> Result<Vec<String>, ExecError> {
        let secret = self
            .secrets_api(ns)
            .get_opt(name)
            .await
            .map_err(|e| kube_err(&format!("get secret {ns}/{name}"), e))?;
        Ok(secret
            .and_then(|s| s.data)
            .unwrap_or_default()
            .into_values()
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .collect())
    }

    /// Makes the Job `owner` (its uid) own the object `name` of `api`: Kubernetes' garbage
    /// collector deletes it with the Job.
    fn own<K>(&self, api: &Api<K>, name: &str, uid: &str, what: &str) -> Result<(), ExecError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let owner = serde_json::json!({"metadata": {"ownerReferences": [{
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "uid": uid,
            "blockOwnerDeletion": true,
        }]}});
        self.runtime
            .block_on(api.patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&owner),
            ))
            .map(|_| ())
            .map_err(|e| kube_err(&format!("own the {what}"), e))
    }

    fn jobs(&self, ns: &str) -> Api<Job> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The Job of `key`: from the store when it speaks for it, from the API otherwise (a Job
    /// too new for the store yet, or a watch that is failing).
    fn current(&self, key: &JobKey) -> Result<Option<Job>, ExecError> {
        match self.store.seen(key).0 {
            Seen::Present(j) => Ok(Some(*j)),
            Seen::Deleted(_) => Ok(None),
            Seen::Absent | Seen::Unknown => self.find(key),
        }
    }

    /// [`KubeExecutor::find`], noting when.
    fn asking(&self, at: &mut Option<Instant>, key: &JobKey) -> Result<Option<Job>, ExecError> {
        *at = Some(Instant::now());
        self.find(key)
    }

    /// Finds the Job of `key` in either namespace, asking the API.
    fn find(&self, key: &JobKey) -> Result<Option<Job>, ExecError> {
        let name = job_name(key);
        for ns in [
            &self.settings.untrusted_namespace,
            &self.settings.trusted_namespace,
        ] {
            let got = self
                .runtime
                .block_on(self.jobs(ns).get_opt(&name))
                .map_err(|e| kube_err(&format!("get job {ns}/{name}"), e))?;
            if got.is_some() {
                return Ok(got);
            }
        }
        Ok(None)
    }

    fn was_cancelled(&self, key: &JobKey) -> bool {
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    fn state_of(&self, key: &JobKey, job: Option<&Job>) -> Option<JobState> {
        // An ended Job keeps its result, even while the TTL controller deletes it.
        if let Some(state) = job.map(job_state).filter(JobState::is_final) {
            return Some(state);
        }
        match job {
            _ if self.was_cancelled(key) => Some(JobState::Cancelled),
            Some(j) if j.metadata.deletion_timestamp.is_some() => Some(JobState::Cancelled),
            Some(j) => Some(job_state(j)),
            None => None,
        }
    }

    /// Whether the Job has ended (or is gone): from the store, or read now from the API.
    async fn ended(&self, key: &JobKey, ns: &str, name: &str) -> Result<bool, ExecError> {
        let now = match self.store.seen(key).0 {
            Seen::Present(j) => Some(*j),
            Seen::Deleted(_) => None,
            Seen::Absent | Seen::Unknown => self
                .jobs(ns)
                .get_opt(name)
                .await
                .map_err(|e| kube_err("get job", e))?,
        };
        Ok(self
            .state_of(key, now.as_ref())
            .is_none_or(|s| s.is_final()))
    }

    /// The job container's exit code and reason (e.g. OOMKilled), for a failed Job.
    async fn failure_detail(&self, ns: &str, name: &str) -> Option<(i32, String)> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={name}")))
            .await
            .ok()?;
        list.items.iter().find_map(|p| {
            let cs = p.status.as_ref()?.container_statuses.as_ref()?;
            let t = cs
                .iter()
                .find(|c| c.name == "job")?
                .state
                .as_ref()?
                .terminated
                .as_ref()?;
            Some((t.exit_code, t.reason.clone().unwrap_or_default()))
        })
    }

    /// Adds the container's exit code and reason to a Failed state.
    fn with_detail(&self, ns: &str, name: &str, state: JobState) -> JobState {
        match state {
            JobState::Failed {
                exit_code: None,
                reason,
            } => match self.runtime.block_on(self.failure_detail(ns, name)) {
                Some((code, why)) => JobState::Failed {
                    exit_code: Some(code),
                    reason: if why.is_empty() {
                        format!("exited with {code} ({reason})")
                    } else {
                        format!("exited with {code}: {why} ({reason})")
                    },
                },
                None => JobState::Failed {
                    exit_code: None,
                    reason,
                },
            },
            s => s,
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExecError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| kube_err("starting the async runtime", e))
}

impl Executor for KubeExecutor {
    fn start(&self, spec: &JobSpec) -> Result<(), ExecError> {
        // Refused before anything is created: an untrusted job naming a secret, a secret the
        // source does not have or whose policy does not allow this job.
        let invalid = |message| ExecError::Invalid {
            key: spec.key(),
            message,
        };
        crate::secrets::refuse_untrusted(spec).map_err(invalid)?;
        let values = if spec.secrets.is_empty() {
            Vec::new()
        } else {
            self.secrets.for_job(spec).map_err(invalid)?
        };
        if let Some(bad) = spec.inputs.iter().find_map(|i| {
            (i.job.contains('/') || !crate::model::job::is_safe_relative_path(&i.job))
                .then_some(&i.job)
                .or_else(|| {
                    i.files
                        .iter()
                        .find(|f| !crate::model::job::is_safe_relative_path(&f.path))
                        .map(|f| &f.path)
                })
        }) {
            return Err(ExecError::Invalid {
                key: spec.key(),
                message: format!("input {bad:?} is not a plain relative path"),
            });
        }
        manifest::check_fetch_plan(spec)?;
        let job = manifest(spec, &self.settings);
        let ns = namespace(spec, &self.settings).to_owned();
        let name = job_name(&spec.key());
        // The pod's network is fenced before the pod exists.
        let policies: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
            Api::namespaced(self.client.clone(), &ns);
        match self.runtime.block_on(policies.create(
            &PostParams::default(),
            &network_policy(spec, &self.settings),
        )) {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(kube_err(&format!("create network policy in {ns}"), e)),
        }
        // The job's secrets, in a Secret of its own, before the Job that refers to it. One
        // left by an earlier attempt (a daemon that stopped between the two) is used as is.
        let secrets = self.secrets_api(&ns);
        if !values.is_empty() {
            match self.runtime.block_on(secrets.create(
                &PostParams::default(),
                &manifest::secret(spec, &self.settings, &values),
            )) {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(kube_err(&format!("create secret in {ns}"), e)),
            }
        }
        let created = match self
            .runtime
            .block_on(self.jobs(&ns).create(&PostParams::default(), &job))
        {
            Ok(j) => j,
            // Already there: started before (perhaps by an earlier daemon): adopt it, unless
            // it is still being deleted after a cancel.
            Err(kube::Error::Api(s)) if s.code == 409 => match self.find(&spec.key())? {
                Some(j) if j.metadata.deletion_timestamp.is_some() => {
                    return Err(ExecError::Backend(format!(
                        "{}: a cancelled run is still being deleted; try again",
                        spec.key()
                    )));
                }
                Some(j) => j,
                None => return Ok(()),
            },
            Err(e) => {
                // No Job will own the Secret: it goes now (it would be used as is by the
                // next attempt, but values must not outlive the job they were made for).
                if !values.is_empty() {
                    let _ = self
                        .runtime
                        .block_on(secrets.delete(&name, &DeleteParams::default()));
                }
                return Err(kube_err(&format!("create job in {ns}"), e));
            }
        };
        // The policy and the Secret go when the Job goes (Kubernetes' garbage collector).
        if let Some(uid) = &created.metadata.uid {
            self.own(&policies, &name, uid, &format!("network policy in {ns}"))?;
            if !values.is_empty() {
                self.own(&secrets, &name, uid, &format!("secret in {ns}"))?;
            }
        }
        Ok(())
    }

    fn state(&self, key: &JobKey) -> Result<Option<JobState>, ExecError> {
        // Deleted before it ended (by hand, or its namespace cleaned up): it may have run
        // partly, so it is lost (and runs once more), unless seakeeper cancelled it.
        if let (Seen::Deleted(j), _) = self.store.seen(key) {
            let ns = j.metadata.namespace.clone().unwrap_or_default();
            let state = match self.state_of(key, Some(&j)).filter(JobState::is_final) {
                Some(s) => s,
                None if self.was_cancelled(key) => JobState::Cancelled,
                None => deleted(),
            };
            return Ok(Some(self.with_detail(&ns, &job_name(key), state)));
        }
        let job = self.current(key)?;
        let ns = job
            .as_ref()
            .and_then(|j| j.metadata.namespace.clone())
            .unwrap_or_default();
        Ok(self
            .state_of(key, job.as_ref())
            .map(|s| self.with_detail(&ns, &job_name(key), s)))
    }

    /// Waits on the store of watched Jobs (no watch of its own): wakes when the Job changes,
    /// and asks the API only while the store cannot say.
    fn wait(&self, key: &JobKey, timeout: Option<Duration>) -> Result<JobState, ExecError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let name = job_name(key);
        let mut ns = String::new();
        let mut last: Option<JobState> = None;
        let mut failures = 0u32;
        let mut asked: Option<Instant> = None;
        loop {
            let (seen, generation) = self.store.seen(key);
            let job = match seen {
                Seen::Present(j) => Some(*j),
                Seen::Deleted(j) => {
                    // Gone: its last state if it had ended; else cancelled, when seakeeper
                    // cancelled it, or lost (deleted behind its back; it runs once more).
                    let ns = j.metadata.namespace.clone().unwrap_or_default();
                    let ended = self.state_of(key, Some(&j)).filter(JobState::is_final);
                    let state = ended
                        .or(last.filter(JobState::is_final))
                        .unwrap_or_else(|| {
                            if self.was_cancelled(key) {
                                JobState::Cancelled
                            } else {
                                deleted()
                            }
                        });
                    return Ok(self.with_detail(&ns, &name, state));
                }
                // Seen before and asked less than 2 s ago: wait for the store rather than ask
                // the API again (many waiters woken by one change must not flood it).
                Seen::Absent | Seen::Unknown
                    if last.is_some()
                        && asked.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) =>
                {
                    let left = Duration::from_secs(2)
                        .saturating_sub(asked.map_or(Duration::ZERO, |t| t.elapsed()));
                    self.store.wait_change(generation, left);
                    continue;
                }
                // The API answers while the store cannot; it may fail for a while (a restart,
                // a network blip): give up only when it keeps failing.
                Seen::Absent | Seen::Unknown => match self.asking(&mut asked, key) {
                    Ok(j) => {
                        failures = 0;
                        j
                    }
                    // Waiting with no deadline never gives up (the daemon's waiter would not
                    // be started again); it asks less and less often.
                    Err(e) => {
                        failures += 1;
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Err(e);
                        }
                        if failures == 10 {
                            tracing::warn!("waiting for {key}: {e}; still trying");
                        }
                        let pause = 200u64 << failures.min(5);
                        std::thread::sleep(Duration::from_millis(pause));
                        continue;
                    }
                },
            };
            let Some(job) = job else {
                return match (self.was_cancelled(key), last) {
                    (true, _) => Ok(JobState::Cancelled),
                    // Seen, then gone without an end: deleted meanwhile.
                    (false, Some(s)) if s.is_final() => Ok(self.with_detail(&ns, &name, s)),
                    (false, Some(_)) => Ok(deleted()),
                    (false, None) => Err(ExecError::Unknown(key.clone())),
                };
            };
            ns = job.metadata.namespace.clone().unwrap_or_default();
            let state = self.state_of(key, Some(&job)).unwrap_or(JobState::Pending);
            if state.is_final() {
                return Ok(self.with_detail(&ns, &name, state));
            }
            last = Some(state.clone());
            let wait = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(state);
                    }
                    left.min(Duration::from_secs(2))
                }
                None => Duration::from_secs(2),
            };
            self.store.wait_change(generation, wait);
        }
    }

    fn logs(
        &self,
        key: &JobKey,
        follow: bool,
        sink: &mut dyn FnMut(LogLine),
    ) -> Result<(), ExecError> {
        let job = self
            .current(key)?
            .ok_or_else(|| ExecError::Unknown(key.clone()))?;
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let name = job_name(key);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        self.runtime.block_on(async {
            // Wait for the pod (the Job controller creates it).
            let pod = loop {
                let list = pods
                    .list(&ListParams::default().labels(&format!("job-name={name}")))
                    .await
                    .map_err(|e| kube_err("list pods", e))?;
                let running = list.items.into_iter().find(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .is_some_and(|ph| ph != "Pending")
                });
                if let Some(p) = running {
                    break p;
                }
                if !follow || self.ended(key, &ns, &name).await? {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            // Every line is masked with the values of the job's own secrets.
            let mask = self.values_to_mask(&ns, &name).await?;
            // A followed stream can end while the job still runs (an API server or kubelet
            // restart, log rotation): reconnect from the last line's time and skip what was
            // already delivered.
            let mut last_time = String::new();
            let mut last_seen = std::time::Instant::now();
            loop {
                let params = LogParams {
                    container: Some("job".into()),
                    follow,
                    timestamps: true,
                    since_seconds: (!last_time.is_empty())
                        .then(|| last_seen.elapsed().as_secs() as i64 + 2),
                    ..LogParams::default()
                };
                let stream = pods
                    .log_stream(&pod_name, &params)
                    .await
                    .map_err(|e| kube_err(&format!("logs of {ns}/{pod_name}"), e))?;
                let mut stream = std::pin::pin!(stream);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    let n = match stream.read_until(b'\n', &mut buf).await {
                        Ok(n) => n,
                        Err(_) if follow => 0,
                        Err(e) => return Err(kube_err("reading logs", e)),
                    };
                    if n == 0 {
                        break;
                    }
                    // Job output need not be UTF-8.
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    let (time, text) = line.split_once(' ').unwrap_or(("", line));
                    if !last_time.is_empty() && !time.is_empty() && time <= last_time.as_str() {
                        continue;
                    }
                    if !time.is_empty() {
                        last_time = time.to_owned();
                        last_seen = std::time::Instant::now();
                    }
                    sink(LogLine {
                        time: time.to_owned(),
                        text: if mask.is_empty() {
                            text.to_owned()
                        } else {
                            crate::secrets::mask(text, &mask)
                        },
                    });
                }
                if !follow || self.ended(key, &ns, &name).await? {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }

    fn cancel(&self, key: &JobKey) -> Result<(), ExecError> {
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        let Some(job) = self.current(key)? else {
            return Ok(());
        };
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..DeleteParams::default()
        };
        match self
            .runtime
            .block_on(self.jobs(&ns).delete(&job_name(key), &params))
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(kube_err("delete job", e)),
        }
    }

    fn list(&self) -> Result<Vec<(JobKey, JobState)>, ExecError> {
        if let Some(all) = self.store.all() {
            let mut out: Vec<(JobKey, JobState)> = all
                .iter()
                .map(|(k, j)| {
                    (
                        k.clone(),
                        self.state_of(k, Some(j)).unwrap_or(JobState::Pending),
                    )
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(out);
        }
        let mut out = Vec::new();
        for ns in [
            &self.settings.untrusted_namespace,
            &self.settings.trusted_namespace,
        ] {
            let list = self
                .runtime
                .block_on(
                    self.jobs(ns)
                        .list(&ListParams::default().labels(&format!("{MANAGED_BY}=seakeeper"))),
                )
                .map_err(|e| kube_err(&format!("list jobs in {ns}"), e))?;
            for j in &list.items {
                if let Some(key) = key_of(j) {
                    let state = self.state_of(&key, Some(j)).unwrap_or(JobState::Pending);
                    out.push((key, state));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The collector stores the outputs and reports them as its termination message (JSON).
    fn outputs(&self, key: &JobKey) -> Result<Vec<OutputFile>, ExecError> {
        let job = self
            .current(key)?
            .ok_or_else(|| ExecError::Unknown(key.clone()))?;
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let list = self
            .runtime
            .block_on(
                pods.list(&ListParams::default().labels(&format!("job-name={}", job_name(key)))),
            )
            .map_err(|e| kube_err("list pods", e))?;
        for pod in &list.items {
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref());
            for cs in statuses.into_iter().flatten() {
                if cs.name != "collect" {
                    continue;
                }
                let msg = cs
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .and_then(|t| t.message.as_deref());
                if let Some(msg) = msg {
                    // More outputs than 4 KB of termination message holds: the collector says so.
                    if let Ok(serde_json::Value::Object(o)) =
                        serde_json::from_str::<serde_json::Value>(msg)
                        && let Some(e) = o.get("error").and_then(|e| e.as_str())
                    {
                        return Err(ExecError::Backend(format!("{key}: the collector: {e}")));
                    }
                    return serde_json::from_str(msg).map_err(|e| {
                        kube_err(
                            "the collector's termination message is not an output list",
                            e,
                        )
                    });
                }
            }
        }
        Ok(Vec::new())
    }
}
