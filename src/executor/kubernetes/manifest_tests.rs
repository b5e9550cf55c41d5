//! Tests of the Job manifest.

use super::*;

/// A trusted job of `acme/api` in `pipeline`, with `inputs`.
fn spec(job: &str, pipeline: &str, inputs: Vec<crate::model::JobInputs>) -> JobSpec {
    JobSpec {
        build_id: "b-1".parse().unwrap(),
        job: job.into(),
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
        required: vec![],
        caches: vec![],
        inputs,
    }
}

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
    let spec = |pipeline: &str| spec("unit", pipeline, vec![]);
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

/// Issue 18: the fetch container places the outputs of the jobs a job needs, read-only
/// from the store, each checked against its digest.
#[test]
fn issue_18_inputs_are_fetched_from_the_store_and_checked() {
    let digest = crate::model::Digest::of(b"hello\n");
    let spec = spec(
        "test",
        "post-merge",
        vec![crate::model::JobInputs {
            job: "build".into(),
            files: vec![crate::model::OutputFile {
                path: "dist/it's here.txt".into(),
                digest: digest.clone(),
                size: 6,
                executable: false,
            }],
        }],
    );
    let job = manifest(&spec, &KubeSettings::default());
    let pod = job.spec.unwrap().template.spec.unwrap();
    let fetch = &pod.init_containers.unwrap()[0];
    let store = fetch
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "store")
        .expect("the store is mounted in the fetch container");
    assert_eq!(store.read_only, Some(true));
    let env: BTreeMap<String, String> = fetch
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    // seakeeper itself places them (it checks each digest as it copies): no shell.
    let plan: crate::model::FetchPlan = serde_json::from_str(&env["SEAKEEPER_FETCH"]).unwrap();
    assert_eq!(plan.inputs, spec.inputs);
    assert_eq!(plan.commit, spec.commit);
    assert_eq!(
        fetch.command.as_deref(),
        Some(&["seakeeper".to_owned()][..])
    );
    let args = fetch.args.as_ref().unwrap().join(" ");
    assert_eq!(args, "job fetch --workspace /workspace --store /store");
    assert!(pod.volumes.unwrap().iter().any(|v| v.name == "store"));
}

/// Issue 19: a plan over what one environment variable may hold goes in pieces; one over what
/// a pod can carry is refused with the reason.
#[test]
fn issue_19_a_large_fetch_plan_goes_in_pieces_and_a_huge_one_is_refused() {
    let digest = crate::model::Digest::of(b"x");
    let many = |n: usize| crate::model::JobInputs {
        job: "build".into(),
        files: (0..n)
            .map(|i| crate::model::OutputFile {
                path: format!("dist/assets/some/deep/path/file-{i:06}.js"),
                digest: digest.clone(),
                size: 1,
                executable: false,
            })
            .collect(),
    };
    let mut spec = spec("test", "post-merge", vec![many(1_200)]);
    let job = manifest(&spec, &KubeSettings::default());
    let pod = job.spec.unwrap().template.spec.unwrap();
    let env = pod.init_containers.unwrap()[0].env.clone().unwrap();
    let pieces: Vec<&String> = env
        .iter()
        .filter(|e| e.name.starts_with("SEAKEEPER_FETCH_"))
        .map(|e| e.value.as_ref().unwrap())
        .collect();
    assert!(pieces.len() > 1, "in pieces");
    assert!(pieces.iter().all(|p| p.len() <= FETCH_PLAN_PIECE));
    assert!(!env.iter().any(|e| e.name == "SEAKEEPER_FETCH"));
    let joined: String = pieces.iter().map(|p| p.as_str()).collect();
    let plan: crate::model::FetchPlan = serde_json::from_str(&joined).unwrap();
    assert_eq!(plan.inputs[0].files.len(), 1_200);
    assert!(render_yaml(&spec, &KubeSettings::default()).is_ok());

    spec.inputs = vec![many(20_000)];
    let e = render_yaml(&spec, &KubeSettings::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("20000 input files") && e.contains("archive"),
        "{e}"
    );
}
