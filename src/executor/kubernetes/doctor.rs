//! `seakeeper doctor --kubernetes`: does the cluster a kubeconfig names give seakeeper's Jobs
//! what they rely on? The step SRE runs after `kubectl apply -k bootstrap/kubernetes`. Each
//! check is one line, ok or FAIL with the namespace, object and field at fault:
//!
//! - the jobs namespaces exist and enforce Pod Security `restricted`;
//! - their ServiceAccounts mount no token (`automountServiceAccountToken: false`), so no pod
//!   there gets one unless it asks;
//! - RBAC (a SubjectAccessReview per account, verb and namespace) lets none of those accounts
//!   get, list or watch Secrets, in the jobs namespaces, seakeeper's own, or cluster-wide;
//! - the untrusted namespace has a NetworkPolicy denying egress to every pod by default, and
//!   no policy there allows egress to the API server (the `kubernetes` Service's cluster IP and
//!   its Endpoints' addresses and ports);
//! - a trivial Job runs to completion in each jobs namespace, with a pod as locked down as
//!   seakeeper's own Jobs' (it is one: [`super::manifest`] with its steps replaced by
//!   `seakeeper doctor probe`, which fails if it finds a token, or, untrusted, reaches the API
//!   server); the pod as admitted mounts no token; the Job is deleted.
//!
//! It only reads, except for the Jobs it creates and deletes (labelled
//! `app.kubernetes.io/managed-by: seakeeper-doctor`, never seakeeper's, so a daemon never
//! adopts them). Every API call has a deadline; the Jobs have one of their own.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyEgressRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};

use super::{KubeSettings, job_state, manifest};
use crate::model::{JobSpec, JobState, Trust};

/// The label Pod Security admission enforces by.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The label of the doctor's own Jobs (not seakeeper's: a daemon must not adopt them).
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const DOCTOR: &str = "seakeeper-doctor";
/// Where the kubelet puts a service-account token in a container.
pub const TOKEN_PATHS: &[&str] = &[
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "/run/secrets/kubernetes.io/serviceaccount/token",
];

/// What the doctor checks, and with what.
#[derive(Debug, Clone)]
pub struct DoctorSettings {
    /// The namespace of trusted jobs.
    pub trusted_namespace: String,
    /// The namespace of untrusted jobs.
    pub untrusted_namespace: String,
    /// seakeeper's own namespace (where its key and secrets live).
    pub seakeeper_namespace: String,
    /// The image of the trivial Jobs (seakeeper's own, by digest: it runs `seakeeper doctor
    /// probe`).
    pub image: String,
    /// How long each trivial Job may take, from creation to completion.
    pub job_timeout: Duration,
    /// How long any one API call may take.
    pub call_timeout: Duration,
}

/// What stops the doctor before it can check anything.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// `--image` is not pinned by digest.
    #[error(
        "--image {0:?} is not pinned by digest: give NAME@sha256:<64 hex digits> (a tag can move; the doctor runs exactly the image it is given)"
    )]
    ImageNotPinned(String),
    /// No kubeconfig or in-cluster account, or a client that cannot be made from it.
    #[error("kubernetes configuration: {0}")]
    Config(String),
    /// The API server the configuration names does not answer.
    #[error("the API server at {0} does not answer: {1}")]
    Unreachable(String, String),
}

/// The result of one check: a line for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Passed.
    pub ok: bool,
    /// What was checked and found (namespace, object, field).
    pub line: String,
}

impl Check {
    fn ok(line: impl Into<String>) -> Check {
        Check {
            ok: true,
            line: line.into(),
        }
    }
    fn fail(line: impl Into<String>) -> Check {
        Check {
            ok: false,
            line: line.into(),
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{tag} {}", self.line)
    }
}

/// Refuses an image that is not `NAME[:TAG]@sha256:<64 hex>` (as the executor does).
pub fn check_image(image: &str) -> Result<(), DoctorError> {
    if crate::model::job::is_pinned_image(image) && !image.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(DoctorError::ImageNotPinned(image.to_owned()))
    }
}

/// Runs every check against the cluster of the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or
/// the in-cluster account, calling `report` with each as it is done. True when all passed.
pub fn run(settings: &DoctorSettings, report: &mut dyn FnMut(&Check)) -> Result<bool, DoctorError> {
    check_image(&settings.image)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DoctorError::Config(format!("starting the async runtime: {e}")))?;
    runtime.block_on(async {
        let config = tokio::time::timeout(settings.call_timeout, kube::Config::infer())
            .await
            .map_err(|_| DoctorError::Config("timed out reading it".into()))?
            .map_err(|e| DoctorError::Config(e.to_string()))?;
        let config_url = config.cluster_url.to_string();
        let client =
            kube::Client::try_from(config).map_err(|e| DoctorError::Config(e.to_string()))?;
        let cluster = config_url.clone();
        let doctor = Doctor {
            client,
            s: settings.clone(),
        };
        // A cluster that does not answer at all is one error, not a FAIL per check.
        let version = doctor
            .call("get /version", doctor.client.apiserver_version())
            .await
            .map_err(|e| DoctorError::Unreachable(cluster.clone(), e))?;
        let mut all_ok = true;
        let mut say = |c: Check| {
            all_ok &= c.ok;
            report(&c);
        };
        say(Check::ok(format!(
            "API server {cluster}: Kubernetes {}",
            version.git_version
        )));
        let jobs_namespaces = [
            (Trust::Trusted, settings.trusted_namespace.as_str()),
            (Trust::Untrusted, settings.untrusted_namespace.as_str()),
        ];
        // A namespace that is not there is one failure; nothing is checked in it.
        let mut present = Vec::new();
        for (trust, ns) in jobs_namespaces {
            let (check, exists) = doctor.namespace(ns).await;
            say(check);
            if exists {
                present.push((trust, ns));
            }
        }
        for (_, ns) in &present {
            for c in doctor.service_accounts(ns).await {
                say(c);
            }
        }
        for (_, ns) in &present {
            for c in doctor.secrets_unreadable(ns).await {
                say(c);
            }
        }
        if present.iter().any(|(t, _)| *t == Trust::Untrusted) {
            for c in doctor.api_server_fenced().await {
                say(c);
            }
        }
        for (trust, ns) in present {
            for c in doctor.trivial_job(trust, ns).await {
                say(c);
            }
        }
        Ok(all_ok)
    })
}

/// What every check needs.
struct Doctor {
    /// The client of the cluster the kubeconfig names.
    client: kube::Client,
    /// The namespaces, the image and the deadlines.
    s: DoctorSettings,
}

impl Doctor {
    /// An API call with the deadline every call has.
    async fn call<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.s.call_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(s))) => Err(format!("{what}: {} ({})", s.message, s.code)),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!(
                "{what}: no answer within {}s",
                self.s.call_timeout.as_secs()
            )),
        }
    }

    /// The namespace's Pod Security label, and whether it exists (or may: an error says
    /// nothing either way).
    async fn namespace(&self, ns: &str) -> (Check, bool) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let found = match self
            .call(&format!("get namespace {ns}"), api.get_opt(ns))
            .await
        {
            Err(e) => return (Check::fail(format!("namespace {ns}: {e}")), true),
            Ok(None) => {
                let missing = Check::fail(format!(
                    "namespace {ns}: not found (kubectl apply -k bootstrap/kubernetes makes it); nothing checked in it"
                ));
                return (missing, false);
            }
            Ok(Some(n)) => n,
        };
        let labels = found.metadata.labels.unwrap_or_default();
        let check = match labels.get(ENFORCE_LABEL).map(String::as_str) {
            Some("restricted") => Check::ok(format!(
                "namespace {ns}: label {ENFORCE_LABEL} is \"restricted\""
            )),
            Some(other) => Check::fail(format!(
                "namespace {ns}: label {ENFORCE_LABEL} is {other:?}, not \"restricted\""
            )),
            None => Check::fail(format!(
                "namespace {ns}: label {ENFORCE_LABEL} is missing (must be \"restricted\")"
            )),
        };
        (check, true)
    }

    /// Every account of the namespace: a pod there can name any of them.
    async fn service_accounts(&self, ns: &str) -> Vec<Check> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let list = match self
            .call(
                &format!("list serviceaccounts in {ns}"),
                api.list(&ListParams::default()),
            )
            .await
        {
            Ok(l) => l.items,
            Err(e) => return vec![Check::fail(format!("namespace {ns}: {e}"))],
        };
        if list.is_empty() {
            return vec![Check::fail(format!(
                "namespace {ns}: no ServiceAccount (not even default): is it there?"
            ))];
        }
        list.iter()
            .map(|sa| {
                let name = sa.metadata.name.as_deref().unwrap_or("?");
                match sa.automount_service_account_token {
                    Some(false) => Check::ok(format!(
                        "namespace {ns}: ServiceAccount {name}: automountServiceAccountToken is false"
                    )),
                    Some(true) => Check::fail(format!(
                        "namespace {ns}: ServiceAccount {name}: automountServiceAccountToken is true (must be false: a pod there that does not say otherwise mounts its token)"
                    )),
                    None => Check::fail(format!(
                        "namespace {ns}: ServiceAccount {name}: automountServiceAccountToken is unset, so true (must be false: a pod there that does not say otherwise mounts its token)"
                    )),
                }
            })
            .collect()
    }

    /// No account of the namespace may get, list or watch Secrets anywhere that matters.
    async fn secrets_unreadable(&self, ns: &str) -> Vec<Check> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let names: Vec<String> = match self
            .call(
                &format!("list serviceaccounts in {ns}"),
                accounts.list(&ListParams::default()),
            )
            .await
        {
            Ok(l) => l
                .items
                .into_iter()
                .filter_map(|a| a.metadata.name)
                .collect(),
            Err(e) => return vec![Check::fail(format!("namespace {ns}: {e}"))],
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let mut where_: Vec<&str> = vec![
            &self.s.untrusted_namespace,
            &self.s.trusted_namespace,
            &self.s.seakeeper_namespace,
        ];
        where_.dedup();
        let mut out = Vec::new();
        for sa in &names {
            let user = format!("system:serviceaccount:{ns}:{sa}");
            let mut allowed = Vec::new();
            let mut failed = None;
            'reviews: for target in where_.iter().copied().chain([""]) {
                for verb in ["get", "list", "watch"] {
                    let review = SubjectAccessReview {
                        metadata: ObjectMeta::default(),
                        spec: SubjectAccessReviewSpec {
                            user: Some(user.clone()),
                            groups: Some(vec![
                                "system:serviceaccounts".into(),
                                format!("system:serviceaccounts:{ns}"),
                                "system:authenticated".into(),
                            ]),
                            resource_attributes: Some(ResourceAttributes {
                                namespace: (!target.is_empty()).then(|| target.to_owned()),
                                verb: Some(verb.into()),
                                group: Some(String::new()),
                                resource: Some("secrets".into()),
                                ..ResourceAttributes::default()
                            }),
                            ..SubjectAccessReviewSpec::default()
                        },
                        status: None,
                    };
                    match self
                        .call(
                            "create subjectaccessreview",
                            api.create(&PostParams::default(), &review),
                        )
                        .await
                    {
                        Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {
                            let why = r.status.and_then(|s| s.reason).unwrap_or_default();
                            let scope = if target.is_empty() {
                                "in every namespace".to_owned()
                            } else {
                                format!("in {target}")
                            };
                            allowed.push(format!("{verb} secrets {scope} ({why})"));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            failed = Some(e);
                            break 'reviews;
                        }
                    }
                }
            }
            out.push(match (failed, allowed.is_empty()) {
                (Some(e), _) => Check::fail(format!(
                    "namespace {ns}: ServiceAccount {sa}: cannot tell whether it can read Secrets: {e}"
                )),
                (None, true) => Check::ok(format!(
                    "namespace {ns}: ServiceAccount {sa}: RBAC lets it read no Secret ({} and cluster-wide)",
                    where_.join(", ")
                )),
                (None, false) => Check::fail(format!(
                    "namespace {ns}: ServiceAccount {sa}: RBAC lets it {}",
                    allowed.join("; ")
                )),
            });
        }
        out
    }

    /// The API server's addresses as pods reach them: the `kubernetes` Service's cluster IP
    /// and port, and its Endpoints' addresses and ports (policies are enforced on one or the
    /// other, depending on the network plugin).
    async fn api_server_addresses(&self) -> Result<Vec<(IpAddr, i32)>, String> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), "default");
        let svc = self
            .call("get service default/kubernetes", services.get("kubernetes"))
            .await?;
        let mut out = Vec::new();
        let spec = svc.spec.unwrap_or_default();
        for ip in spec
            .cluster_ips
            .unwrap_or_default()
            .iter()
            .chain(&spec.cluster_ip)
        {
            for p in spec.ports.iter().flatten() {
                if let Ok(ip) = ip.parse() {
                    out.push((ip, p.port));
                }
            }
        }
        let endpoints: Api<Endpoints> = Api::namespaced(self.client.clone(), "default");
        if let Some(ep) = self
            .call(
                "get endpoints default/kubernetes",
                endpoints.get_opt("kubernetes"),
            )
            .await?
        {
            for subset in ep.subsets.iter().flatten() {
                for a in subset.addresses.iter().flatten() {
                    for p in subset.ports.iter().flatten() {
                        if let Ok(ip) = a.ip.parse() {
                            out.push((ip, p.port));
                        }
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn api_server_fenced(&self) -> Vec<Check> {
        let ns = &self.s.untrusted_namespace;
        let api: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), ns);
        let policies = match self
            .call(
                &format!("list networkpolicies in {ns}"),
                api.list(&ListParams::default()),
            )
            .await
        {
            Ok(l) => l.items,
            Err(e) => return vec![Check::fail(format!("namespace {ns}: {e}"))],
        };
        let mut out = Vec::new();
        // Denying by default: a policy selecting every pod with Egress among its types.
        let default_deny: Vec<String> = policies
            .iter()
            .filter(|p| {
                let spec = p.spec.as_ref();
                let all_pods = spec
                    .and_then(|s| s.pod_selector.as_ref())
                    .is_none_or(|sel| {
                        sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
                            && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
                    });
                let egress = spec.is_some_and(|s| match &s.policy_types {
                    Some(t) => t.iter().any(|t| t == "Egress"),
                    None => s.egress.is_some(),
                });
                all_pods && egress
            })
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        out.push(if default_deny.is_empty() {
            Check::fail(format!(
                "namespace {ns}: no NetworkPolicy selects every pod (podSelector: {{}}) with policyTypes [Egress]: egress is open by default"
            ))
        } else {
            Check::ok(format!(
                "namespace {ns}: NetworkPolicy {} selects every pod and denies egress by default",
                default_deny.join(", ")
            ))
        });
        let addresses = match self.api_server_addresses().await {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => {
                out.push(Check::fail(
                    "service default/kubernetes: no address to check the policies against"
                        .to_owned(),
                ));
                return out;
            }
            Err(e) => {
                out.push(Check::fail(e));
                return out;
            }
        };
        let mut opened = Vec::new();
        for p in &policies {
            let name = p.metadata.name.as_deref().unwrap_or("?");
            let Some(spec) = &p.spec else { continue };
            let types_egress = match &spec.policy_types {
                Some(t) => t.iter().any(|t| t == "Egress"),
                None => spec.egress.is_some(),
            };
            if !types_egress {
                continue;
            }
            for (i, rule) in spec.egress.iter().flatten().enumerate() {
                for (ip, port) in &addresses {
                    if allows(rule, *ip, *port) {
                        opened.push(format!(
                            "NetworkPolicy {name}: spec.egress[{i}] allows {}",
                            socket(*ip, *port)
                        ));
                    }
                }
            }
        }
        let list = addresses
            .iter()
            .map(|(ip, port)| socket(*ip, *port))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(if opened.is_empty() {
            Check::ok(format!(
                "namespace {ns}: no NetworkPolicy allows egress to the API server ({list})"
            ))
        } else {
            Check::fail(format!(
                "namespace {ns}: the API server is reachable: {}",
                opened.join("; ")
            ))
        });
        out
    }

    /// Runs `seakeeper doctor probe` as a Job in `ns` and waits for it; then deletes it.
    async fn trivial_job(&self, trust: Trust, ns: &str) -> Vec<Check> {
        let name = format!(
            "seakeeper-doctor-{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        let probe = match trust {
            Trust::Trusted => vec![],
            Trust::Untrusted => match self.api_server_addresses().await {
                Ok(a) => a
                    .iter()
                    .flat_map(|(ip, port)| ["--unreachable".to_owned(), socket(*ip, *port)])
                    .collect(),
                Err(e) => return vec![Check::fail(e)],
            },
        };
        let job = doctor_job(&self.s, trust, ns, &name, probe);
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let what = format!("namespace {ns}: Job {name}");
        if let Err(e) = self
            .call("create job", jobs.create(&PostParams::default(), &job))
            .await
        {
            return vec![Check::fail(format!("{what}: {e}"))];
        }
        let mut out = vec![self.wait_for(&jobs, ns, &name).await];
        out.extend(self.admitted_pod(ns, &name).await);
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        out.push(
            match self.call("delete job", jobs.delete(&name, &params)).await {
                Ok(_) => Check::ok(format!("{what}: deleted")),
                Err(e) => Check::fail(format!("{what}: {e} (delete it by hand)")),
            },
        );
        out
    }

    async fn wait_for(&self, jobs: &Api<Job>, ns: &str, name: &str) -> Check {
        let what = format!("namespace {ns}: Job {name}");
        let started = Instant::now();
        loop {
            let state = match self.call("get job", jobs.get(name)).await {
                Ok(j) => job_state(&j),
                Err(e) => return Check::fail(format!("{what}: {e}")),
            };
            match state {
                JobState::Succeeded => {
                    return Check::ok(format!(
                        "{what}: ran to completion in {:.1}s (probe passed)",
                        started.elapsed().as_secs_f64()
                    ));
                }
                s if s.is_final() => {
                    let detail = self.pod_detail(ns, name).await;
                    let ended = match s {
                        JobState::Failed { reason, .. } => format!("failed: {reason}"),
                        JobState::TimedOut => "ran past its activeDeadlineSeconds".into(),
                        JobState::Lost { reason } => format!("lost: {reason}"),
                        _ => "was cancelled".into(),
                    };
                    return Check::fail(format!("{what}: {ended}{detail}"));
                }
                _ => {}
            }
            if started.elapsed() >= self.s.job_timeout {
                let detail = self.pod_detail(ns, name).await;
                return Check::fail(format!(
                    "{what}: not finished after {}s{detail}",
                    self.s.job_timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn pods_of(&self, ns: &str, job: &str) -> Result<Vec<Pod>, String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        self.call(
            "list pods",
            pods.list(&ListParams::default().labels(&format!("job-name={job}"))),
        )
        .await
        .map(|l| l.items)
    }

    /// Why the Job's pod did not finish well, as far as its status says.
    async fn pod_detail(&self, ns: &str, job: &str) -> String {
        let pods = match self.pods_of(ns, job).await {
            Ok(p) => p,
            Err(e) => return format!(" ({e})"),
        };
        let Some(pod) = pods.first() else {
            return " (no pod was made: Pod Security admission, a quota or a LimitRange may refuse it; see kubectl describe job)".into();
        };
        let status = pod.status.clone().unwrap_or_default();
        let mut why = vec![format!(
            "pod {} {}",
            pod.metadata.name.as_deref().unwrap_or("?"),
            status.phase.as_deref().unwrap_or("?")
        )];
        for cs in status.container_statuses.iter().flatten() {
            let state = cs.state.clone().unwrap_or_default();
            if let Some(w) = state.waiting {
                why.push(format!(
                    "{}: {} {}",
                    cs.name,
                    w.reason.unwrap_or_default(),
                    w.message.unwrap_or_default()
                ));
            }
            if let Some(t) = state.terminated {
                why.push(format!(
                    "{}: exit {}: {}",
                    cs.name,
                    t.exit_code,
                    t.message.unwrap_or_default().trim()
                ));
            }
        }
        format!(" ({})", why.join("; "))
    }

    /// The pod as the cluster admitted it (after any mutating webhook) mounts no token.
    async fn admitted_pod(&self, ns: &str, job: &str) -> Option<Check> {
        let what = format!("namespace {ns}: pod of Job {job}");
        let pods = match self.pods_of(ns, job).await {
            Ok(p) => p,
            Err(e) => return Some(Check::fail(format!("{what}: {e}"))),
        };
        let pod = pods.first()?;
        let spec = pod.spec.clone().unwrap_or_default();
        let token_volume = spec.volumes.iter().flatten().find(|v| {
            v.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.service_account_token.is_some())
            })
        });
        Some(match (spec.automount_service_account_token, token_volume) {
            (_, Some(v)) => Check::fail(format!(
                "{what}: spec.volumes {} holds a service-account token",
                v.name
            )),
            (Some(false), None) => Check::ok(format!(
                "{what}: automountServiceAccountToken is false and no volume holds a token"
            )),
            (other, None) => Check::fail(format!(
                "{what}: spec.automountServiceAccountToken is {other:?} as admitted (a webhook changed it?)"
            )),
        })
    }
}

/// The doctor's Job: seakeeper's own Job for a trivial spec (the same pod and container
/// security contexts, no token, resources set), with its fetch step gone, its one container
/// running `seakeeper doctor probe`, and the doctor's labels instead of seakeeper's.
fn doctor_job(s: &DoctorSettings, trust: Trust, ns: &str, name: &str, probe: Vec<String>) -> Job {
    let spec = JobSpec {
        build_id: "doctor"
            .parse()
            .expect("a valid build id because it is fixed"),
        job: "doctor".into(),
        pipeline: "doctor".into(),
        project: "seakeeper/doctor"
            .parse()
            .expect("a valid project because it is fixed"),
        change: None,
        source: String::new(),
        commit: "0000000000000000000000000000000000000000"
            .parse()
            .expect("a valid commit id because it is fixed"),
        image: s.image.clone(),
        commands: vec![],
        env: BTreeMap::new(),
        timeout_seconds: s.job_timeout.as_secs().max(1),
        cpu: Some("100m".into()),
        memory: Some("64Mi".into()),
        services: BTreeMap::new(),
        secrets: vec![],
        network: false,
        outputs: vec![],
        trust,
        required: vec![],
        caches: vec![],
        inputs: vec![],
    };
    let settings = KubeSettings {
        untrusted_namespace: ns.to_owned(),
        trusted_namespace: ns.to_owned(),
        ..KubeSettings::default()
    };
    let mut job = manifest(&spec, &settings);
    let labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), DOCTOR.to_owned()),
        ("seakeeper.dev/doctor".to_owned(), name.to_owned()),
    ]);
    job.metadata = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ns.to_owned()),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    };
    if let Some(js) = job.spec.as_mut() {
        // Gone ten minutes after it ends, should the doctor not delete it.
        js.ttl_seconds_after_finished = Some(600);
        js.template.metadata = Some(ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        });
        if let Some(pod) = js.template.spec.as_mut() {
            pod.init_containers = None;
            pod.priority_class_name = None;
            if let Some(c) = pod.containers.first_mut() {
                c.name = "probe".into();
                c.command = Some(vec!["seakeeper".into()]);
                let mut args = vec!["doctor".to_owned(), "probe".to_owned()];
                args.extend(probe);
                c.args = Some(args);
                c.env = None;
                c.working_dir = None;
                // What the probe found is in the pod's status when it fails.
                c.termination_message_policy = Some("FallbackToLogsOnError".into());
            }
            pod.containers.truncate(1);
        }
    }
    job
}

/// `IP:PORT`, with brackets for IPv6.
fn socket(ip: IpAddr, port: i32) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// Whether an egress rule lets TCP to `ip:port` out. Peers given by pod or namespace selector
/// are taken not to match the API server (it is not a pod a policy can select on most
/// clusters); a named port likewise (it names a port of a selected pod).
fn allows(rule: &NetworkPolicyEgressRule, ip: IpAddr, port: i32) -> bool {
    let port_ok = match &rule.ports {
        None => true,
        Some(ports) if ports.is_empty() => true,
        Some(ports) => ports.iter().any(|p| {
            p.protocol.as_deref().unwrap_or("TCP") == "TCP"
                && match &p.port {
                    None => true,
                    Some(IntOrString::Int(n)) => {
                        *n == port || p.end_port.is_some_and(|end| (*n..=end).contains(&port))
                    }
                    Some(IntOrString::String(_)) => false,
                }
        }),
    };
    let peer_ok = match &rule.to {
        None => true,
        Some(peers) if peers.is_empty() => true,
        Some(peers) => peers.iter().any(|peer| {
            peer.ip_block.as_ref().is_some_and(|b| {
                in_cidr(ip, &b.cidr) && !b.except.iter().flatten().any(|except| in_cidr(ip, except))
            })
        }),
    };
    port_ok && peer_ok
}

/// Whether `ip` is in `cidr` (`a.b.c.d/n` or an IPv6 prefix); a malformed CIDR holds nothing.
fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `seakeeper doctor probe`, inside the doctor's Job: no service-account token in the
/// container, and none of `unreachable` (nor the API server's address the kubelet gives every
/// container, when asked for any) answers a TCP connection within `timeout`.
pub fn probe(unreachable: &[String], timeout: Duration) -> Vec<Check> {
    let mut out = Vec::new();
    for path in TOKEN_PATHS {
        out.push(if std::path::Path::new(path).exists() {
            Check::fail(format!("{path}: a service-account token is mounted"))
        } else {
            Check::ok(format!("{path}: no service-account token"))
        });
    }
    if unreachable.is_empty() {
        return out;
    }
    let mut targets: Vec<String> = unreachable.to_vec();
    if let (Ok(host), Ok(port)) = (
        std::env::var("KUBERNETES_SERVICE_HOST"),
        std::env::var("KUBERNETES_SERVICE_PORT"),
    ) {
        targets.push(match host.parse::<IpAddr>() {
            Ok(ip) => socket(ip, port.parse().unwrap_or(443)),
            Err(_) => format!("{host}:{port}"),
        });
    }
    targets.sort();
    targets.dedup();
    for t in targets {
        let addrs: Vec<std::net::SocketAddr> = match std::net::ToSocketAddrs::to_socket_addrs(&t) {
            Ok(a) => a.collect(),
            Err(e) => {
                out.push(Check::ok(format!("{t}: does not resolve ({e})")));
                continue;
            }
        };
        let reached = addrs
            .iter()
            .find(|a| std::net::TcpStream::connect_timeout(a, timeout).is_ok());
        out.push(match reached {
            Some(a) => Check::fail(format!("{t}: the API server answered at {a}")),
            None => Check::ok(format!("{t}: unreachable")),
        });
    }
    out
}

#[cfg(test)]
#[path = "doctor_tests.rs"]
mod tests;
