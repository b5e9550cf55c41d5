//! The Kubernetes executor: one `batch/v1` Job per job, in the namespace of its trust level,
//! labelled with build id, job, project and change (exact values in annotations, since label
//! values cannot hold `/`); `activeDeadlineSeconds` from the timeout, `backoffLimit: 0`,
//! `ttlSecondsAfterFinished`, no service-account token, non-root, no privilege escalation, all
//! capabilities dropped, RuntimeDefault seccomp. An init container (seakeeper's own image, which
//! carries git) fetches exactly the commit; the job's container runs its commands; a collector
//! container (seakeeper's image again), the only one given the artifact store's credentials,
//! waits for the job's end marker and stores the outputs.
//!
//! Jobs are watched with kube's runtime watcher (re-lists on 410 Gone, reconnects with backoff),
//! pod logs are followed, cancel deletes with foreground propagation, and a restarted daemon
//! adopts Jobs by label ([`Executor::list`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{AsyncBufReadExt as _, StreamExt as _};
use k8s_openapi::api::batch::v1::{Job, JobSpec as KubeJobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, HostAlias,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecretKeySelector, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use kube::runtime::watcher;
use sha2::Digest as _;

use super::{ExecError, Executor, LogLine, script, seakeeper_env};
use crate::model::{JobKey, JobSpec, JobState, OutputFile, Trust};

/// seakeeper's own image (fetch and collect containers).
pub const DEFAULT_SEAKEEPER_IMAGE: &str = "registry.example.org/seakeeper/seakeeper:latest";

const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const BUILD_ID: &str = "seakeeper.dev/build-id";
const JOB: &str = "seakeeper.dev/job";
const PROJECT: &str = "seakeeper.dev/project";
const CHANGE: &str = "seakeeper.dev/change";
const COMMIT: &str = "seakeeper.dev/commit";
const PIPELINE: &str = "seakeeper.dev/pipeline";

/// Where and how Jobs are created.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// The namespace of untrusted jobs.
    pub untrusted_namespace: String,
    /// The namespace of trusted jobs.
    pub trusted_namespace: String,
    /// seakeeper's own image.
    pub seakeeper_image: String,
    /// Kept this long after finishing (`ttlSecondsAfterFinished`).
    pub ttl_seconds_after_finished: i32,
    /// CPU when the job does not say.
    pub default_cpu: String,
    /// Memory when the job does not say.
    pub default_memory: String,
    /// The Secret holding the artifact store's credentials (collector only).
    pub store_secret: String,
    /// The PersistentVolumeClaim of the output store, mounted at `/store` in the collector only.
    pub store_claim: String,
    /// The Secret (in the trusted namespace) whose keys are the secrets trusted jobs may name.
    pub job_secrets: String,
    /// Where the pod itself must reach (the source server its init container fetches from,
    /// the artifact store its collector pushes to), as CIDRs: the only egress a job without
    /// the network gets (with DNS).
    pub infrastructure_cidrs: Vec<String>,
    /// The PriorityClass of each pipeline's pods (`executor.priority_classes`), by pipeline
    /// name.
    pub priority_classes: std::collections::BTreeMap<String, String>,
}

impl Default for KubeSettings {
    fn default() -> Self {
        KubeSettings {
            untrusted_namespace: "seakeeper-untrusted".into(),
            trusted_namespace: "seakeeper-trusted".into(),
            seakeeper_image: DEFAULT_SEAKEEPER_IMAGE.into(),
            ttl_seconds_after_finished: 86_400,
            default_cpu: "1".into(),
            default_memory: "2Gi".into(),
            store_secret: "seakeeper-store".into(),
            store_claim: "seakeeper-outputs".into(),
            job_secrets: "seakeeper-job-secrets".into(),
            infrastructure_cidrs: Vec::new(),
            priority_classes: std::collections::BTreeMap::new(),
        }
    }
}

use super::NEVER_REACHED as NEVER;

/// The NetworkPolicy that goes with a job's pod (same name and namespace): no ingress; egress
/// only to DNS and `infrastructure_cidrs` (for the init container and the collector), and, for
/// a job that has the network, to the internet but never to private, loopback or link-local
/// addresses (the cluster's and seakeeper's own services).
pub fn network_policy(
    spec: &JobSpec,
    s: &KubeSettings,
) -> k8s_openapi::api::networking::v1::NetworkPolicy {
    use k8s_openapi::api::networking::v1::{
        IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
        NetworkPolicySpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let key = spec.key();
    let selector = BTreeMap::from([
        (BUILD_ID.to_owned(), label_value(spec.build_id.as_str())),
        (JOB.to_owned(), label_value(&spec.job)),
    ]);
    let block = |cidr: &str, except: Option<Vec<String>>| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except,
        }),
        ..NetworkPolicyPeer::default()
    };
    let dns = NetworkPolicyEgressRule {
        to: None,
        ports: Some(
            ["UDP", "TCP"]
                .map(|protocol| NetworkPolicyPort {
                    protocol: Some(protocol.into()),
                    port: Some(IntOrString::Int(53)),
                    end_port: None,
                })
                .to_vec(),
        ),
    };
    let mut egress = vec![dns];
    if !s.infrastructure_cidrs.is_empty() {
        egress.push(NetworkPolicyEgressRule {
            to: Some(
                s.infrastructure_cidrs
                    .iter()
                    .map(|c| block(c, None))
                    .collect(),
            ),
            ports: None,
        });
    }
    if spec.network {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![
                block(
                    "0.0.0.0/0",
                    Some(NEVER.iter().map(|c| (*c).to_owned()).collect()),
                ),
                block(
                    "::/0",
                    Some(vec![
                        "fc00::/7".into(),
                        "fe80::/10".into(),
                        "::1/128".into(),
                    ]),
                ),
            ]),
            ports: None,
        });
    }
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(job_name(&key)),
            namespace: Some(namespace(spec, s).to_owned()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.to_owned(), "seakeeper".to_owned()),
                (BUILD_ID.to_owned(), label_value(spec.build_id.as_str())),
                (JOB.to_owned(), label_value(&spec.job)),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(Vec::new()),
            egress: Some(egress),
        }),
    }
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn label_value(s: &str) -> String {
    let mut v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if v.len() > 63 {
        let hash = hex::encode(&sha2::Sha256::digest(s.as_bytes())[..4]);
        v.truncate(54);
        v.push('-');
        v.push_str(&hash);
    }
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The Job's name: `sk-<job, DNS-safe, short>-<hash of the key>`, at most 63 characters.
pub fn job_name(key: &JobKey) -> String {
    let hash = hex::encode(&sha2::Sha256::digest(key.to_string().as_bytes())[..8]);
    let mut slug: String = key
        .job
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    slug.truncate(36);
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        format!("sk-{hash}")
    } else {
        format!("sk-{slug}-{hash}")
    }
}

/// The namespace a spec runs in.
pub fn namespace<'a>(spec: &JobSpec, s: &'a KubeSettings) -> &'a str {
    match spec.trust {
        Trust::Trusted => &s.trusted_namespace,
        Trust::Untrusted => &s.untrusted_namespace,
    }
}

fn quantity(q: &str) -> Quantity {
    Quantity(q.to_owned())
}

fn locked_down() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// Where the job says it ended (outside the workspace, so it is never an output).
const DONE_MARKER: &str = "/seakeeper-control/exit-status";
/// The uid of the job's own containers; the collector runs as another uid, so the job cannot
/// read its environment, and waits until no process of this uid is left.
const JOB_UID: i64 = 65_532;
const COLLECTOR_UID: i64 = 65_533;
const SERVICE_UID: i64 = 65_531;

/// Builds the Job for a spec.
pub fn manifest(spec: &JobSpec, s: &KubeSettings) -> Job {
    let key = spec.key();
    let mut labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), "seakeeper".to_owned()),
        (BUILD_ID.to_owned(), label_value(spec.build_id.as_str())),
        (JOB.to_owned(), label_value(&spec.job)),
        (PROJECT.to_owned(), label_value(spec.project.as_str())),
        (PIPELINE.to_owned(), label_value(&spec.pipeline)),
    ]);
    let mut annotations = BTreeMap::from([
        (BUILD_ID.to_owned(), spec.build_id.to_string()),
        (JOB.to_owned(), spec.job.clone()),
        (PROJECT.to_owned(), spec.project.to_string()),
        (COMMIT.to_owned(), spec.commit.to_string()),
        (PIPELINE.to_owned(), spec.pipeline.clone()),
    ]);
    if let Some((c, p)) = spec.change {
        labels.insert(CHANGE.to_owned(), c.to_string());
        annotations.insert(CHANGE.to_owned(), format!("{c}/{p}"));
    }
    let env = |pairs: Vec<(String, String)>| -> Vec<EnvVar> {
        pairs
            .into_iter()
            .map(|(name, value)| EnvVar {
                name,
                value: Some(value),
                value_from: None,
            })
            .collect()
    };
    let mut job_env: Vec<(String, String)> = vec![
        ("HOME".into(), "/workspace".into()),
        ("TMPDIR".into(), "/tmp".into()),
    ];
    job_env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    job_env.extend(seakeeper_env(spec, "/workspace"));
    let workspace = VolumeMount {
        name: "workspace".into(),
        mount_path: "/workspace".into(),
        ..VolumeMount::default()
    };
    let tmp = VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..VolumeMount::default()
    };
    let cpu = spec.cpu.clone().unwrap_or_else(|| s.default_cpu.clone());
    let memory = spec
        .memory
        .clone()
        .unwrap_or_else(|| s.default_memory.clone());
    let resources = ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), quantity(&cpu)),
            ("memory".to_owned(), quantity(&memory)),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".to_owned(), quantity(&cpu)),
            ("memory".to_owned(), quantity(&memory)),
        ])),
        ..ResourceRequirements::default()
    };
    // The job's script, then the end marker the collector waits for (written even on failure).
    let wrapped = format!("trap 'echo $? > {DONE_MARKER}' EXIT\n{}", script(spec));
    let fetch = Container {
        name: "fetch".into(),
        image: Some(s.seakeeper_image.clone()),
        command: Some(vec!["/bin/sh".into(), "-e".into(), "-c".into()]),
        args: Some(vec![
            "git config --global --add safe.directory /workspace\ngit init -q /workspace\ncd /workspace\ngit fetch -q --depth 1 \"$SEAKEEPER_SOURCE\" \"$SEAKEEPER_COMMIT\"\ngit checkout -q FETCH_HEAD\ntest \"$(git rev-parse HEAD)\" = \"$SEAKEEPER_COMMIT\"\nrm -rf .git\n".into(),
        ]),
        env: Some(env(vec![
            ("SEAKEEPER_SOURCE".into(), spec.source.clone()),
            ("SEAKEEPER_COMMIT".into(), spec.commit.to_string()),
            ("HOME".into(), "/tmp".into()),
        ])),
        volume_mounts: Some(vec![workspace.clone(), tmp.clone()]),
        security_context: Some(locked_down()),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("100m")),
                ("memory".to_owned(), quantity("256Mi")),
            ])),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    };
    let main = Container {
        name: "job".into(),
        image: Some(spec.image.clone()),
        command: Some(vec!["/bin/sh".into(), "-e".into(), "-c".into()]),
        args: Some(vec![wrapped]),
        working_dir: Some("/workspace".into()),
        env: Some({
            let mut e = env(job_env);
            // Trusted jobs' secrets, each a key of the `seakeeper-job-secrets` Secret in the
            // trusted namespace (untrusted jobs never get any: `start` refuses them).
            for name in &spec.secrets {
                e.push(EnvVar {
                    name: name.clone(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: s.job_secrets.clone(),
                            key: name.clone(),
                            optional: Some(false),
                        }),
                        ..EnvVarSource::default()
                    }),
                });
            }
            e
        }),
        resources: Some(resources),
        volume_mounts: Some(vec![workspace.clone(), tmp.clone()]),
        security_context: Some(locked_down()),
        ..Container::default()
    };
    let mut containers = vec![main];
    // Services (databases for tests) run beside the job as native sidecars (init containers
    // that keep running, Kubernetes 1.29+), so the pod ends when the job does; their names
    // resolve to the pod's own address.
    let mut sidecars = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for (host, image) in &spec.services {
        let mut base: String = host
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        base.truncate(40);
        let mut name = format!("service-{}", base.trim_matches('-'));
        let mut n = 1;
        while !used.insert(name.clone()) {
            n += 1;
            name = format!("service-{}-{n}", base.trim_matches('-'));
        }
        sidecars.push(Container {
            name,
            image: Some(image.clone()),
            restart_policy: Some("Always".into()),
            security_context: Some(SecurityContext {
                read_only_root_filesystem: Some(false),
                run_as_user: Some(SERVICE_UID),
                ..locked_down()
            }),
            ..Container::default()
        });
    }
    let control = VolumeMount {
        name: "control".into(),
        mount_path: "/seakeeper-control".into(),
        ..VolumeMount::default()
    };
    if let Some(v) = containers[0].volume_mounts.as_mut() {
        v.push(control.clone());
    }
    if !spec.outputs.is_empty() {
        let mut args = vec![
            "job".to_owned(),
            "collect".to_owned(),
            "--workspace".to_owned(),
            "/workspace".to_owned(),
            "--wait-for".to_owned(),
            DONE_MARKER.to_owned(),
            "--wait-for-uid".to_owned(),
            JOB_UID.to_string(),
            "--store".to_owned(),
            "/store".to_owned(),
        ];
        for o in &spec.outputs {
            args.push("--output".into());
            args.push(o.clone());
        }
        containers.push(Container {
            name: "collect".into(),
            image: Some(s.seakeeper_image.clone()),
            command: Some(vec!["seakeeper".into()]),
            args: Some(args),
            env_from: Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: s.store_secret.clone(),
                    optional: Some(true),
                }),
                ..EnvFromSource::default()
            }]),
            volume_mounts: Some(vec![
                VolumeMount {
                    read_only: Some(true),
                    ..workspace.clone()
                },
                VolumeMount {
                    read_only: Some(true),
                    ..control.clone()
                },
                tmp.clone(),
                VolumeMount {
                    name: "store".into(),
                    mount_path: "/store".into(),
                    ..VolumeMount::default()
                },
            ]),
            security_context: Some(SecurityContext {
                run_as_user: Some(COLLECTOR_UID),
                ..locked_down()
            }),
            ..Container::default()
        });
    }
    let mut init_containers = vec![fetch];
    init_containers.extend(sidecars);
    let mut volumes = vec![
        Volume {
            name: "workspace".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        Volume {
            name: "control".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    if !spec.outputs.is_empty() {
        volumes.push(Volume {
            name: "store".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: s.store_claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
    }
    let meta = ObjectMeta {
        name: Some(job_name(&key)),
        namespace: Some(namespace(spec, s).to_owned()),
        labels: Some(labels.clone()),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    };
    Job {
        metadata: meta,
        spec: Some(KubeJobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(spec.timeout_seconds.clamp(1, i64::MAX as u64) as i64),
            ttl_seconds_after_finished: Some(s.ttl_seconds_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    priority_class_name: s.priority_classes.get(&spec.pipeline).cloned(),
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(JOB_UID),
                        run_as_group: Some(JOB_UID),
                        fs_group: Some(JOB_UID),
                        fs_group_change_policy: Some("OnRootMismatch".into()),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    init_containers: Some(init_containers),
                    // The collector must see when the job's processes are gone.
                    share_process_namespace: (!spec.outputs.is_empty()).then_some(true),
                    host_aliases: (!spec.services.is_empty()).then(|| {
                        vec![HostAlias {
                            ip: "127.0.0.1".into(),
                            hostnames: Some(spec.services.keys().cloned().collect()),
                        }]
                    }),
                    containers,
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..KubeJobSpec::default()
        }),
        status: None,
    }
}

/// The manifests as YAML, for `seakeeper job render`: the NetworkPolicy, then the Job.
pub fn render_yaml(spec: &JobSpec, s: &KubeSettings) -> Result<String, ExecError> {
    let ordered = |value: serde_json::Value, api: &str, kind: &str| {
        let mut value = value;
        if let Some(o) = value.as_object_mut() {
            // apiVersion and kind first, as people write them.
            let mut ordered = serde_json::Map::new();
            ordered.insert("apiVersion".into(), api.into());
            ordered.insert("kind".into(), kind.into());
            for (k, v) in std::mem::take(o) {
                if k != "apiVersion" && k != "kind" {
                    ordered.insert(k, v);
                }
            }
            *o = ordered;
        }
        serde_yaml_ng::to_string(&value).map_err(|e| ExecError::Backend(e.to_string()))
    };
    let policy = serde_json::to_value(network_policy(spec, s))
        .map_err(|e| ExecError::Backend(e.to_string()))?;
    let job =
        serde_json::to_value(manifest(spec, s)).map_err(|e| ExecError::Backend(e.to_string()))?;
    Ok(format!(
        "{}---\n{}",
        ordered(policy, "networking.k8s.io/v1", "NetworkPolicy")?,
        ordered(job, "batch/v1", "Job")?
    ))
}

/// A Job's state from its status.
pub fn job_state(job: &Job) -> JobState {
    let Some(status) = &job.status else {
        return JobState::Pending;
    };
    for c in status.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => return JobState::Succeeded,
            "Failed" | "FailureTarget" => {
                return match c.reason.as_deref() {
                    Some("DeadlineExceeded") => JobState::TimedOut,
                    reason => JobState::Failed {
                        exit_code: None,
                        reason: format!(
                            "{}{}",
                            reason.unwrap_or("Failed"),
                            c.message
                                .as_deref()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        ),
                    },
                };
            }
            _ => {}
        }
    }
    if status.active.unwrap_or(0) > 0 {
        JobState::Running
    } else {
        JobState::Pending
    }
}

/// The Kubernetes executor.
pub struct KubeExecutor {
    client: kube::Client,
    settings: KubeSettings,
    runtime: tokio::runtime::Runtime,
    cancelled: Mutex<HashSet<JobKey>>,
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
        let runtime = runtime()?;
        let client = {
            let _guard = runtime.enter();
            kube::Client::try_from(config).map_err(|e| kube_err("kubernetes client", e))?
        };
        Ok(KubeExecutor {
            client,
            settings,
            runtime,
            cancelled: Mutex::new(HashSet::new()),
        })
    }

    fn jobs(&self, ns: &str) -> Api<Job> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Finds the Job of `key` in either namespace.
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

    /// Whether the Job has ended (or is gone), read now from the API.
    async fn ended(&self, key: &JobKey, ns: &str, name: &str) -> Result<bool, ExecError> {
        let now = self
            .jobs(ns)
            .get_opt(name)
            .await
            .map_err(|e| kube_err("get job", e))?;
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

fn key_of(job: &Job) -> Option<JobKey> {
    let a = job.metadata.annotations.as_ref()?;
    Some(JobKey {
        build_id: a.get(BUILD_ID)?.parse().ok()?,
        job: a.get(JOB)?.clone(),
    })
}

impl Executor for KubeExecutor {
    fn start(&self, spec: &JobSpec) -> Result<(), ExecError> {
        if spec.trust == Trust::Untrusted && !spec.secrets.is_empty() {
            return Err(ExecError::Invalid {
                key: spec.key(),
                message: "untrusted jobs get no secrets".into(),
            });
        }
        let job = manifest(spec, &self.settings);
        let ns = namespace(spec, &self.settings).to_owned();
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
            Err(e) => return Err(kube_err(&format!("create job in {ns}"), e)),
        };
        // The policy goes when the Job goes (Kubernetes' garbage collector).
        if let Some(uid) = &created.metadata.uid {
            let owner = serde_json::json!({"metadata": {"ownerReferences": [{
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": job_name(&spec.key()),
                "uid": uid,
                "blockOwnerDeletion": true,
            }]}});
            self.runtime
                .block_on(policies.patch(
                    &job_name(&spec.key()),
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&owner),
                ))
                .map_err(|e| kube_err(&format!("own the network policy in {ns}"), e))?;
        }
        Ok(())
    }

    fn state(&self, key: &JobKey) -> Result<Option<JobState>, ExecError> {
        let job = self.find(key)?;
        let ns = job
            .as_ref()
            .and_then(|j| j.metadata.namespace.clone())
            .unwrap_or_default();
        Ok(self
            .state_of(key, job.as_ref())
            .map(|s| self.with_detail(&ns, &job_name(key), s)))
    }

    fn wait(&self, key: &JobKey, timeout: Option<Duration>) -> Result<JobState, ExecError> {
        let Some(job) = self.find(key)? else {
            return match self.was_cancelled(key) {
                true => Ok(JobState::Cancelled),
                false => Err(ExecError::Unknown(key.clone())),
            };
        };
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let name = job_name(key);
        let first = self.state_of(key, Some(&job)).unwrap_or(JobState::Pending);
        if first.is_final() {
            return Ok(self.with_detail(&ns, &name, first));
        }
        let api = self.jobs(&ns);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let fut = async {
            let mut stream = watcher::watcher(api, config).boxed();
            let mut last = first;
            // After a reconnect (or 410 Gone) the watcher lists again: Init, InitApply for each
            // object, InitDone. A Job missing from that list was deleted meanwhile.
            let mut seen_in_relist = true;
            let mut failures = 0u32;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Init) => seen_in_relist = false,
                    Ok(watcher::Event::InitDone) if !seen_in_relist => {
                        return Ok(if last.is_final() {
                            last
                        } else {
                            JobState::Cancelled
                        });
                    }
                    Ok(watcher::Event::Apply(j)) | Ok(watcher::Event::InitApply(j)) => {
                        seen_in_relist = true;
                        failures = 0;
                        last = self.state_of(key, Some(&j)).unwrap_or(JobState::Pending);
                        if last.is_final() {
                            return Ok(last);
                        }
                    }
                    Ok(watcher::Event::Delete(j)) => {
                        let ended = self.state_of(key, Some(&j)).filter(JobState::is_final);
                        return Ok(ended.unwrap_or(JobState::Cancelled));
                    }
                    Ok(_) => {}
                    // The watcher re-lists and reconnects by itself; give up only when the
                    // API keeps failing (a missing namespace, no permission).
                    Err(e) => {
                        failures += 1;
                        if failures > 50 {
                            return Err(kube_err(&format!("watching job {ns}/{name}"), e));
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            Ok(last)
        };
        let state = match timeout {
            None => self.runtime.block_on(fut)?,
            Some(t) => match self
                .runtime
                .block_on(async { tokio::time::timeout(t, fut).await })
            {
                Ok(r) => r?,
                Err(_) => return Ok(self.state(key)?.unwrap_or(JobState::Pending)),
            },
        };
        Ok(self.with_detail(&ns, &name, state))
    }

    fn logs(
        &self,
        key: &JobKey,
        follow: bool,
        sink: &mut dyn FnMut(LogLine),
    ) -> Result<(), ExecError> {
        let job = self
            .find(key)?
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
                        text: text.to_owned(),
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
        let Some(job) = self.find(key)? else {
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
            .find(key)?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_kubernetes_safe() {
        let key = JobKey {
            build_id: "b-1".parse().unwrap(),
            job: "Unit Tests!".into(),
        };
        let n = job_name(&key);
        assert!(n.len() <= 63 && n.starts_with("sk-unit-tests-"), "{n}");
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert_eq!(label_value("mediawiki/core"), "mediawiki_core");
        assert!(label_value(&"x".repeat(100)).len() <= 63);
    }

    /// Issue 14, item 12: each pipeline's pods get the PriorityClass the settings name.
    #[test]
    fn pods_get_their_pipelines_priority_class() {
        let spec = |pipeline: &str| JobSpec {
            build_id: "b-1".parse().unwrap(),
            job: "unit".into(),
            pipeline: pipeline.into(),
            project: "acme/api".parse().unwrap(),
            change: None,
            source: "https://gerrit.example.org/acme/api".into(),
            commit: "1111111111111111111111111111111111111111".parse().unwrap(),
            image: "debian:bookworm".into(),
            commands: vec!["true".into()],
            env: Default::default(),
            timeout_seconds: 60,
            cpu: None,
            memory: None,
            services: Default::default(),
            secrets: vec![],
            network: false,
            outputs: vec![],
            trust: crate::model::Trust::Trusted,
        };
        let mut s = KubeSettings::default();
        s.priority_classes
            .insert("post-merge".into(), "seakeeper-high".into());
        let class = |pipeline: &str| {
            manifest(&spec(pipeline), &s)
                .spec
                .and_then(|j| j.template.spec)
                .and_then(|p| p.priority_class_name)
        };
        assert_eq!(class("post-merge").as_deref(), Some("seakeeper-high"));
        assert_eq!(class("check"), None);
    }
}
