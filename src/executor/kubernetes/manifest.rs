//! The Kubernetes objects of a job: its `batch/v1` Job (an init container that fetches
//! exactly the commit, the job's container, a collector for its outputs; locked down) and the
//! NetworkPolicy that fences its pod, and what a Job's status means as a [`JobState`].

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec as KubeJobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, HostAlias,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecretKeySelector, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::Digest as _;

use crate::executor::{ExecError, script, seakeeper_env};
use crate::model::{JobKey, JobSpec, JobState, Trust};

/// Where a job finds its secrets as files (in the pod: a Secret volume, on a tmpfs).
pub const SECRETS_DIR: &str = "/run/secrets";

/// seakeeper's own image (fetch and collect containers) in [`KubeSettings::default`]: a
/// placeholder, pinned as every use of it must be. Deployments name theirs in
/// `executor.seakeeper_image` (built by `seakeeper image self`).
pub const DEFAULT_SEAKEEPER_IMAGE: &str = "registry.example.org/seakeeper/seakeeper@sha256:0000000000000000000000000000000000000000000000000000000000000000";

pub(super) const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub(super) const BUILD_ID: &str = "seakeeper.dev/build-id";
pub(super) const JOB: &str = "seakeeper.dev/job";
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
    /// The PersistentVolumeClaim of dependency caches in each trust level's namespace (so the
    /// trust levels never share one), mounted at `/caches`: read-only in the fetch container,
    /// which restores, writable in the collector, which saves; never in the job's container.
    pub cache_claim: String,
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
            cache_claim: "seakeeper-caches".into(),
            infrastructure_cidrs: Vec::new(),
            priority_classes: std::collections::BTreeMap::new(),
        }
    }
}

use crate::executor::NEVER_REACHED as NEVER;

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

/// The job's own Secret, named as its Job: one key per secret the job names, holding the
/// value. Immutable; created just before the Job, then owned by it (`ownerReferences`), so
/// Kubernetes deletes it with the Job. Its values are never logged or rendered.
pub fn secret(
    spec: &JobSpec,
    s: &KubeSettings,
    values: &crate::secrets::JobSecrets,
) -> k8s_openapi::api::core::v1::Secret {
    use k8s_openapi::ByteString;
    k8s_openapi::api::core::v1::Secret {
        metadata: ObjectMeta {
            name: Some(job_name(&spec.key())),
            namespace: Some(namespace(spec, s).to_owned()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.to_owned(), "seakeeper".to_owned()),
                (BUILD_ID.to_owned(), label_value(spec.build_id.as_str())),
                (JOB.to_owned(), label_value(&spec.job)),
            ])),
            ..ObjectMeta::default()
        },
        immutable: Some(true),
        type_: Some("Opaque".into()),
        data: Some(
            values
                .iter()
                .map(|(name, v)| (name.clone(), ByteString(v.expose().as_bytes().to_vec())))
                .collect(),
        ),
        ..k8s_openapi::api::core::v1::Secret::default()
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
/// Where the fetch container leaves the caches' keys for the collector.
const CACHE_KEYS: &str = "/seakeeper-cache-keys/keys.json";
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
    if !spec.secrets.is_empty() {
        job_env.push(("SEAKEEPER_SECRETS_DIR".into(), SECRETS_DIR.into()));
    }
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
    // Dependency caches: the fetch container restores them and writes their keys where only
    // it and the collector can (the job could otherwise save under another key).
    let cached = !spec.caches.is_empty();
    let caches_mount = |read_only: bool| VolumeMount {
        name: "caches".into(),
        mount_path: "/caches".into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    };
    let keys_mount = |read_only: bool| VolumeMount {
        name: "cache-keys".into(),
        mount_path: "/seakeeper-cache-keys".into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    };
    let mut fetch_mounts = vec![workspace.clone(), tmp.clone()];
    if !spec.inputs.is_empty() {
        // The outputs of the jobs it needs, read (never written) from the store.
        fetch_mounts.push(VolumeMount {
            name: "store".into(),
            mount_path: "/store".into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    // seakeeper itself places the sources and inputs (no shell in its image; see
    // `seakeeper job fetch`), from a plan in one JSON variable.
    let mut fetch_env = fetch_plan_env(spec);
    fetch_env.extend([
        ("HOME".into(), "/tmp".into()),
        ("TMPDIR".into(), "/tmp".into()),
        // git reads no configuration but its own command line's.
        ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
    ]);
    let mut fetch_args: Vec<String> = ["job", "fetch", "--workspace", "/workspace"]
        .map(String::from)
        .to_vec();
    if !spec.inputs.is_empty() {
        fetch_args.extend(["--store".into(), "/store".into()]);
    }
    if cached {
        fetch_mounts.extend([caches_mount(true), keys_mount(false)]);
        fetch_env.push((
            "SEAKEEPER_CACHES".into(),
            serde_json::to_string(&spec.caches).expect("caches serialize"),
        ));
        fetch_env.push((
            "SEAKEEPER_CACHE_IDENTITY".into(),
            crate::executor::caches::identity(spec),
        ));
        fetch_args.extend([
            "--caches-dir".into(),
            "/caches".into(),
            "--keys-out".into(),
            CACHE_KEYS.into(),
        ]);
    }
    let fetch = Container {
        name: "fetch".into(),
        image: Some(s.seakeeper_image.clone()),
        command: Some(vec!["seakeeper".into()]),
        args: Some(fetch_args),
        env: Some(env(fetch_env)),
        volume_mounts: Some(fetch_mounts),
        security_context: Some(locked_down()),
        // Bounded by the job's own memory (an init container's requests count once, beside
        // the job's, so this reserves nothing more): a patchset with a huge file cannot take
        // the node's memory while it is checked out.
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("100m")),
                ("memory".to_owned(), quantity(&memory)),
            ])),
            limits: Some(BTreeMap::from([("memory".to_owned(), quantity(&memory))])),
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
            // Trusted jobs' secrets, each a key of the Job's own Secret (see [`secret`]),
            // which `start` creates first and the Job owns (untrusted jobs never get any:
            // `start` refuses them).
            for name in &spec.secrets {
                e.push(EnvVar {
                    name: name.clone(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: job_name(&spec.key()),
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
        volume_mounts: Some({
            let mut m = vec![workspace.clone(), tmp.clone()];
            // The secrets as files too (the kubelet keeps Secret volumes on a tmpfs).
            if !spec.secrets.is_empty() {
                m.push(VolumeMount {
                    name: "secrets".into(),
                    mount_path: SECRETS_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                });
            }
            m
        }),
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
    if !spec.outputs.is_empty() || cached {
        let mut args = vec![
            "job".to_owned(),
            "collect".to_owned(),
            "--workspace".to_owned(),
            "/workspace".to_owned(),
            "--wait-for".to_owned(),
            DONE_MARKER.to_owned(),
            "--wait-for-uid".to_owned(),
            JOB_UID.to_string(),
        ];
        if !spec.outputs.is_empty() {
            args.extend(["--store".to_owned(), "/store".to_owned()]);
        }
        if cached {
            args.extend([
                "--caches-dir".to_owned(),
                "/caches".to_owned(),
                "--cache-keys".to_owned(),
                CACHE_KEYS.to_owned(),
            ]);
        }
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
            volume_mounts: Some(
                vec![
                    VolumeMount {
                        read_only: Some(true),
                        ..workspace.clone()
                    },
                    VolumeMount {
                        read_only: Some(true),
                        ..control.clone()
                    },
                    tmp.clone(),
                ]
                .into_iter()
                .chain((!spec.outputs.is_empty()).then(|| VolumeMount {
                    name: "store".into(),
                    mount_path: "/store".into(),
                    ..VolumeMount::default()
                }))
                .chain(cached.then(|| caches_mount(false)))
                .chain(cached.then(|| keys_mount(true)))
                .collect(),
            ),
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
    if !spec.secrets.is_empty() {
        volumes.push(Volume {
            name: "secrets".into(),
            secret: Some(k8s_openapi::api::core::v1::SecretVolumeSource {
                secret_name: Some(job_name(&key)),
                // Readable by the job's group (fsGroup) only.
                default_mode: Some(0o440),
                optional: Some(false),
                ..k8s_openapi::api::core::v1::SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    if !spec.outputs.is_empty() || !spec.inputs.is_empty() {
        volumes.push(Volume {
            name: "store".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: s.store_claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
    }
    if cached {
        volumes.push(Volume {
            name: "caches".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: s.cache_claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
        volumes.push(Volume {
            name: "cache-keys".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
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
    check_fetch_plan(spec)?;
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
        yaml_serde::to_string(&value).map_err(|e| ExecError::Backend(e.to_string()))
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

/// Linux refuses one environment variable over 128 KiB: the fetch plan goes in pieces of at
/// most this many bytes (`SEAKEEPER_FETCH` when it fits in one, else `SEAKEEPER_FETCH_0`, `_1`
/// ..., joined in order by `seakeeper job fetch`).
pub const FETCH_PLAN_PIECE: usize = 64 * 1024;

/// The most a fetch plan may hold in all (the Job object must stay well inside the API
/// server's 1.5 MiB, and the pod's whole environment inside the kernel's 2 MiB).
pub const FETCH_PLAN_MAX: usize = 1024 * 1024;

/// Refuses a job whose fetch plan is over [`FETCH_PLAN_MAX`], saying why.
pub fn check_fetch_plan(spec: &JobSpec) -> Result<(), ExecError> {
    let len = fetch_plan_len(spec);
    if len > FETCH_PLAN_MAX {
        let files: usize = spec.inputs.iter().map(|i| i.files.len()).sum();
        return Err(ExecError::Invalid {
            key: spec.key(),
            message: format!(
                "what its pod must fetch ({files} input files of the jobs it needs) takes {len} \
                 bytes to describe, over the {FETCH_PLAN_MAX} a pod's environment can carry: \
                 have the jobs it needs leave fewer files (an archive of a directory)"
            ),
        });
    }
    Ok(())
}

/// The fetch plan's size in bytes, for [`FETCH_PLAN_MAX`].
pub fn fetch_plan_len(spec: &JobSpec) -> usize {
    serde_json::to_string(&crate::model::FetchPlan::of(spec))
        .map(|s| s.len())
        .unwrap_or(usize::MAX)
}

/// The fetch plan as environment variables (see [`FETCH_PLAN_PIECE`]).
fn fetch_plan_env(spec: &JobSpec) -> Vec<(String, String)> {
    let plan = serde_json::to_string(&crate::model::FetchPlan::of(spec)).expect("plan serializes");
    if plan.len() <= FETCH_PLAN_PIECE {
        return vec![("SEAKEEPER_FETCH".into(), plan)];
    }
    let mut out = Vec::new();
    let mut rest = plan.as_str();
    while !rest.is_empty() {
        let mut cut = rest.len().min(FETCH_PLAN_PIECE);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push((
            format!("SEAKEEPER_FETCH_{}", out.len()),
            rest[..cut].to_owned(),
        ));
        rest = &rest[cut..];
    }
    out
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
