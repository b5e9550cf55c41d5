//! `seakeeper import zuul` against the fixtures in fixtures/import/ and a generated
//! Wikimedia-sized layout: the real binary, `config check` on what it writes, `--check` on
//! the result, and every malformed input failing with its file and line and nothing written.

mod support;
#[path = "support/zuul_world.rs"]
mod zuul_world;

use std::path::{Path, PathBuf};

use support::{FIXED_DATES, git, git_with, ok, output, seakeeper, stderr, stdout};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/import")
        .join(rel)
}

/// `import zuul` of the Wikimedia-like fixture (offline) into `out`, with `extra` arguments.
fn import_fixture(out: &Path, extra: &[&str]) -> std::process::Output {
    let w = fixture("wikimedia");
    output(
        seakeeper()
            .args(["import", "zuul", "--layout"])
            .arg(w.join("zuul/layout.yaml"))
            .arg("--jjb")
            .arg(w.join("jjb"))
            .arg("--dependencies")
            .arg(w.join("zuul/dependencies.yaml"))
            .arg("--out")
            .arg(out)
            .args(extra),
    )
}

/// Commits the imported repo (a reviewable change) and runs `config check` on it.
fn config_check(repo: &Path) -> String {
    git(repo, &["init", "--quiet", "-b", "main"]);
    git(repo, &["add", "-A"]);
    git_with(
        repo,
        &["commit", "--quiet", "-m", "Import from Zuul"],
        &FIXED_DATES,
    );
    ok(seakeeper().args(["config", "check", "--repo"]).arg(repo))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_wikimedia_fixture_imports_into_a_valid_config_repo() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("config");
    let report = tmp.path().join("report.json");
    let o = import_fixture(&out, &["--offline", "--report", report.to_str().unwrap()]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let summary = stdout(&o);
    assert!(summary.contains("imported 9 projects"), "{summary}");
    assert!(
        summary.contains("UNPINNED docker-registry.wikimedia.org/releng/tox:0.4.0"),
        "{summary}"
    );
    assert!(config_check(&out).starts_with("ok: "));
    let show = ok(seakeeper().args(["config", "show", "--repo"]).arg(&out));
    assert!(
        show.contains(
            "  post-merge: central quibble-tox-docker, quibble-doc-publish, quibble-release\n"
        ),
        "{show}"
    );

    // Pipelines: a dependent pipeline is the gate, with its window; timers are schedules.
    let settings = read(&out.join("seakeeper.yaml"));
    assert!(
        settings.contains("window: 16") && settings.contains("window_floor: 2"),
        "{settings}"
    );
    assert!(read(&out.join("schedules.yaml")).contains("cron: 0 3 * * *"));
    // Branch filters of the gates are the projects' branches; shared gate jobs, one queue.
    let wikibase = read(&out.join("projects/mediawiki/extensions/Wikibase.yaml"));
    for want in [
        "- REL1_*",
        "- wmf/*",
        "- master",
        "queue: mediawiki",
        "extension-gate, extension-swat, extension-unittests",
    ] {
        assert!(wikibase.contains(want), "{want} in {wikibase}");
    }
    // Templates of templates, parameters, job trees, dependencies (recursed, and not).
    let cite = read(&out.join("pipelines/mediawiki/extensions/Cite.yaml"));
    assert!(
        cite.contains("mwext-phan") && cite.contains("wmf-quibble-vendor-mysql-php81-docker"),
        "{cite}"
    );
    let wb = read(&out.join("pipelines/mediawiki/extensions/Wikibase.yaml"));
    for dep in [
        "mediawiki/extensions/Cite",
        "mediawiki/extensions/Scribunto",
        "mediawiki/extensions/cldr",
    ] {
        assert!(wb.contains(dep), "{dep} in {wb}");
    }
    let minerva = read(&out.join("pipelines/mediawiki/skins/MinervaNeue.yaml"));
    assert!(
        minerva.contains("mediawiki/extensions/Wikibase") && !minerva.contains("Scribunto"),
        "{minerva}"
    );
    let quibble = read(&out.join("pipelines/integration/quibble.yaml"));
    assert!(
        quibble.contains("needs:\n    - quibble-tox-docker"),
        "{quibble}"
    );
    assert!(out.join("pipelines/pywikibot/core.yaml").exists());
    // A gate that ran only Zuul's `noop` still gates, with no job.
    let ping = read(&out.join("projects/test/gerrit-ping.yaml"));
    assert!(ping.contains("- check\n- gate\n"), "{ping}");
    assert!(read(&out.join("pipelines/test/gerrit-ping.yaml")).contains("gate: []"));
    assert!(
        out.join("templates/pywikibot-core-tox-docker.yaml")
            .exists()
    );
    // JJB: nested-dict parameters, macros calling macros, includes (formatted and escaped).
    let php81 = read(&out.join("templates/wmf-quibble-vendor-mysql-php81-docker.yaml"));
    assert!(php81.contains("quibble-buster-php81:2.0.0"), "{php81}");
    assert!(
        php81.contains("--packages-source vendor --db mysql --run phpunit"),
        "{php81}"
    );
    assert!(
        php81.contains("ZUUL_PROJECT=\"$SEAKEEPER_PROJECT\""),
        "{php81}"
    );
    assert!(php81.contains("timeout: 30m"), "{php81}");
    let periodic = read(&out.join("templates/mediawiki-core-php81-periodic.yaml"));
    assert!(
        periodic.contains("{a,b}") && periodic.contains("${f}"),
        "{periodic}"
    );
    let doxygen = read(&out.join("templates/mediawiki-core-doxygen-publish.yaml"));
    assert!(
        doxygen.contains("releng/doxygen:1.9.1") && doxygen.contains("DOXYGEN_OUT"),
        "{doxygen}"
    );
    let release = read(&out.join("templates/quibble-release.yaml"));
    assert!(
        release.contains("${ZUUL_REF} of quibble") && release.contains("timeout: 20m"),
        "{release}"
    );
    // The unpinned marker.
    let images = read(&out.join("policies/images.yaml"));
    assert!(
        images.contains("image: docker-registry.wikimedia.org/releng/tox:0.4.0"),
        "{images}"
    );

    // The report: before and after per project, counts, every omission with its reason.
    let r: serde_json::Value = serde_json::from_str(&read(&report)).unwrap();
    assert_eq!(r["projects"], 9);
    let core = &r["jobs"]["mediawiki/core"];
    assert_eq!(
        core["before"]["experimental"][0],
        "mediawiki-core-php81-periodic"
    );
    assert!(core["after"].get("experimental").is_none());
    assert_eq!(
        core["after"]["periodic"][0],
        "mediawiki-core-php81-periodic"
    );
    let items = r["items"].as_array().unwrap();
    let has = |fidelity: &str, text: &str| {
        items
            .iter()
            .any(|i| i["fidelity"] == fidelity && i["reason"].as_str().unwrap().contains(text))
    };
    assert!(has("not-mapped", "Groovy"));
    assert!(has("not-mapped", "pipeline `experimental` is not mapped"));
    assert!(has("not-mapped", "`MobileFrontend`") || has("not-mapped", "MobileFrontend"));
    assert!(has("not-mapped", "`publishers`"));
    assert!(has("not-mapped", "`parameters`"));
    assert!(has("not-mapped", "python-file: parameter_functions.py"));
    assert!(has(
        "approximate",
        "pipeline key `success`: Gerrit reporting is seakeeper's own"
    ));
    assert!(has("approximate", "pipeline key `precedence`"));
    assert!(has("approximate", "non-voting"));
    assert!(has("approximate", "ran on a Jenkins agent"));
    let c = &r["counts"];
    assert!(c["approximate"].as_u64().unwrap() > 0 && c["not_mapped"].as_u64().unwrap() > 0);
    assert!(
        r["unpinned_images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["image"] == "docker-registry.wikimedia.org/releng/tox:0.4.0")
    );

    // `--check` finds nothing; a hand-made difference is reported, both ways.
    let same = output(
        seakeeper()
            .args(["import", "zuul", "--check", "--layout"])
            .arg(fixture("wikimedia/zuul/layout.yaml"))
            .arg("--out")
            .arg(&out),
    );
    assert!(same.status.success(), "{}", stdout(&same));
    let cite_path = out.join("pipelines/mediawiki/extensions/Cite.yaml");
    let edited = read(&cite_path)
        .replace("  - mwext-phan\n  gate:", "  - mwext-phan-new\n  gate:")
        .replace("jobs:\n", "jobs:\n  mwext-phan-new:\n    use: mwext-phan\n");
    std::fs::write(&cite_path, edited).unwrap();
    let differs = output(
        seakeeper()
            .args(["import", "zuul", "--check", "--layout"])
            .arg(fixture("wikimedia/zuul/layout.yaml"))
            .arg("--out")
            .arg(&out),
    );
    assert_eq!(differs.status.code(), Some(1), "{}", stdout(&differs));
    let lines = stdout(&differs);
    assert!(
        lines.contains("- mediawiki/extensions/Cite check mwext-phan\n"),
        "{lines}"
    );
    assert!(
        lines.contains("+ mediawiki/extensions/Cite check mwext-phan-new\n"),
        "{lines}"
    );
    // A project that took its jobs over (no central file) is noted, not compared.
    std::fs::remove_file(out.join("pipelines/integration/quibble.yaml")).unwrap();
    let noted = stdout(&output(
        seakeeper()
            .args(["import", "zuul", "--check", "--layout"])
            .arg(fixture("wikimedia/zuul/layout.yaml"))
            .arg("--out")
            .arg(&out),
    ));
    assert!(
        noted.contains("note: integration/quibble has no central pipeline file"),
        "{noted}"
    );
    assert!(!noted.contains("- integration/quibble"), "{noted}");
}

/// The summary people read (stdout, and IMPORTED.md in the new repo), pinned as a snapshot.
#[test]
fn the_summary_is_what_people_read() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("config");
    let o = output(
        seakeeper()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["import", "zuul", "--offline"])
            .args(["--layout", "fixtures/import/wikimedia/zuul/layout.yaml"])
            .args(["--jjb", "fixtures/import/wikimedia/jjb"])
            .args([
                "--dependencies",
                "fixtures/import/wikimedia/zuul/dependencies.yaml",
            ])
            .arg("--out")
            .arg(&out),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o).replace(&out.display().to_string(), "<out>");
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/import-summary.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &text).unwrap();
    }
    let want = std::fs::read_to_string(&snapshot).expect("run with UPDATE_SNAPSHOTS=1 once");
    assert_eq!(
        text, want,
        "the import summary changed (UPDATE_SNAPSHOTS=1 to accept)"
    );
    assert!(read(&out.join("IMPORTED.md")).contains(text.lines().next().unwrap()));
}

#[test]
fn an_unpinned_image_is_refused_by_trusted_pipelines_but_passes_config_check() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("config");
    assert!(import_fixture(&out, &["--offline"]).status.success());
    let files = seakeeper::import::check::read_tree(&out).unwrap();
    let layout = seakeeper::config::load(&files).expect("a valid layout");
    let project: seakeeper::model::ProjectName = "integration/quibble".parse().unwrap();
    let central = layout.central_pipeline(&project).unwrap();
    let errors = seakeeper::config::pipeline::check(
        "pipelines/integration/quibble.yaml",
        central,
        Some(&project),
        Some(&layout),
    )
    .unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("`gate` is trusted")
                && e.message.contains("marked unpinned")),
        "{errors:?}"
    );
}

#[test]
fn an_unreachable_registry_leaves_images_unpinned_and_listed() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("jjb")).unwrap();
    // Port 9 on loopback: nothing listens there.
    std::fs::write(
        tmp.path().join("jjb/jobs.yaml"),
        "- job:\n    name: lint\n    builders:\n      - shell: docker run --rm 127.0.0.1:9/releng/lint:1.0 lint\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("layout.yaml"),
        "pipelines:\n  - name: test\n    manager: IndependentPipelineManager\n    trigger:\n      gerrit:\n        - event: patchset-created\nprojects:\n  - name: tools/lint\n    test: [lint]\n",
    )
    .unwrap();
    let out = tmp.path().join("config");
    let report = tmp.path().join("report.json");
    let o = output(
        seakeeper()
            .args(["import", "zuul", "--resolve-timeout", "5", "--layout"])
            .arg(tmp.path().join("layout.yaml"))
            .arg("--jjb")
            .arg(tmp.path().join("jjb"))
            .arg("--out")
            .arg(&out)
            .arg("--report")
            .arg(&report),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("UNPINNED 127.0.0.1:9/releng/lint:1.0"),
        "{}",
        stdout(&o)
    );
    let r: serde_json::Value = serde_json::from_str(&read(&report)).unwrap();
    let u = &r["unpinned_images"][0];
    assert_eq!(u["image"], "127.0.0.1:9/releng/lint:1.0");
    assert_eq!(u["jobs"][0], "lint");
    assert!(read(&out.join("policies/images.yaml")).contains("127.0.0.1:9/releng/lint:1.0"));
    assert!(config_check(&out).starts_with("ok: "));
}

#[test]
fn a_tag_is_pinned_to_the_digest_its_registry_gives() {
    let Some(registry) = support::registry::DockerRegistry::start() else {
        return;
    };
    // An image with an empty config and no layers, tagged 1.0.
    let client = seakeeper::registry::distribution::Registry::new(
        &format!("http://{}", registry.host),
        None,
    )
    .unwrap();
    let config = b"{}".to_vec();
    let config_digest = seakeeper::model::Digest::of(&config);
    client
        .push_blob(
            "releng/lint",
            &config_digest,
            config.len() as u64,
            Box::new(std::io::Cursor::new(config.clone())),
        )
        .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": []
    }))
    .unwrap();
    let digest = client
        .put_manifest(
            "releng/lint",
            "1.0",
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        )
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("jjb")).unwrap();
    let image = format!("{}/releng/lint:1.0", registry.host);
    std::fs::write(
        tmp.path().join("jjb/jobs.yaml"),
        format!(
            "- job:\n    name: lint\n    builders:\n      - shell: docker run --rm {image} lint\n"
        ),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("layout.yaml"),
        "pipelines:\n  - name: gate\n    manager: DependentPipelineManager\nprojects:\n  - name: tools/lint\n    gate: [lint]\n",
    )
    .unwrap();
    let out = tmp.path().join("config");
    let report = tmp.path().join("report.json");
    ok(seakeeper()
        .args(["import", "zuul", "--layout"])
        .arg(tmp.path().join("layout.yaml"))
        .arg("--jjb")
        .arg(tmp.path().join("jjb"))
        .arg("--out")
        .arg(&out)
        .arg("--report")
        .arg(&report));
    let pinned = format!("{image}@{digest}");
    assert!(read(&out.join("templates/lint.yaml")).contains(&pinned));
    let r: serde_json::Value = serde_json::from_str(&read(&report)).unwrap();
    assert_eq!(r["pinned_images"][&image], pinned.as_str());
    assert!(r["unpinned_images"].as_array().unwrap().is_empty());
    // Pinned, the gate runs it.
    let files = seakeeper::import::check::read_tree(&out).unwrap();
    let layout = seakeeper::config::load(&files).unwrap();
    let project = "tools/lint".parse().unwrap();
    let central = layout.central_pipeline(&project).unwrap();
    seakeeper::config::pipeline::check("p", central, Some(&project), Some(&layout))
        .expect("a pinned image passes");
}

/// Runs a malformed import; returns stderr after checking that it failed and wrote nothing.
fn fails(layout: &Path, jjb: &Path) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("config");
    let report = tmp.path().join("report.json");
    let o = output(
        seakeeper()
            .args(["import", "zuul", "--offline", "--layout"])
            .arg(layout)
            .arg("--jjb")
            .arg(jjb)
            .arg("--out")
            .arg(&out)
            .arg("--report")
            .arg(&report),
    );
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(
        !out.exists() && !report.exists(),
        "nothing is written on failure"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "no temporary directory is left: {left:?}");
    stderr(&o)
}

#[test]
fn malformed_layouts_name_file_and_line_and_write_nothing() {
    let jjb = fixture("wikimedia/jjb");
    let e = fails(&fixture("malformed/missing-template/layout.yaml"), &jjb);
    assert!(e.contains("missing-template/layout.yaml:14: `mediawiki/extensions/Cite` uses project template `extension-gaet`, which the layout does not declare (did you mean `extension-gate`?)"), "{e}");
    let e = fails(&fixture("malformed/yaml-error/layout.yaml"), &jjb);
    assert!(e.contains("yaml-error/layout.yaml:7: "), "{e}");
    let e = fails(&fixture("malformed/unknown-key/layout.yaml"), &jjb);
    assert!(
        e.contains("unknown-key/layout.yaml:1: unknown top-level key `pipeline`"),
        "{e}"
    );
    let e = fails(&fixture("malformed/unknown-job/layout.yaml"), &jjb);
    assert!(e.contains("unknown-job/layout.yaml:11: project `mediawiki/extensions/Cite`, pipeline `test`: unknown job `mwext-phna`: no JJB file defines it (did you mean `mwext-phan`?)"), "{e}");
}

#[test]
fn malformed_jjb_names_file_and_line_and_writes_nothing() {
    let layout = fixture("wikimedia/zuul/layout.yaml");
    let e = fails(&layout, &fixture("malformed/jjb-missing-include/jjb"));
    assert!(
        e.contains("jjb-missing-include/jjb/jobs.yaml:4: `!include-raw: scripts/missing.sh`"),
        "{e}"
    );
    let e = fails(&layout, &fixture("malformed/jjb-unknown-template/jjb"));
    assert!(e.contains("jjb-unknown-template/jjb/jobs.yaml:8: project `quibble` lists `{name}-tox-dokcer`, which is no job-template, job-group or job (did you mean `{name}-tox-docker`?)"), "{e}");
    let e = fails(&layout, &fixture("malformed/jjb-missing-parameter/jjb"));
    assert!(
        e.contains("jjb-missing-parameter/jjb/jobs.yaml:")
            && e.contains("names parameter `flavour`"),
        "{e}"
    );
}

#[test]
fn an_out_directory_that_holds_files_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("config");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let o = import_fixture(&out, &["--offline"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("holds files"), "{}", stderr(&o));
    assert_eq!(read(&out.join("keep.txt")), "mine");

    // A fresh `git init` (or clone) of the config repo is taken: the import is a change to it.
    let repo = tmp.path().join("fresh");
    std::fs::create_dir_all(&repo).unwrap();
    support::git(&repo, &["init", "-q", "-b", "main"]);
    let o = import_fixture(&repo, &["--offline"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(repo.join(".git/HEAD").exists() && repo.join("seakeeper.yaml").exists());
    let imported = read(&repo.join("IMPORTED.md"));
    assert!(
        !imported.contains("more in"),
        "IMPORTED.md lists everything: {imported}"
    );
}

#[test]
fn a_generated_layout_of_2200_projects_imports_checks_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    zuul_world::write(tmp.path(), 2200);
    let out = tmp.path().join("config");
    let report = tmp.path().join("report.json");
    let layout = tmp.path().join("zuul/layout.yaml");
    ok(seakeeper()
        .args(["import", "zuul", "--layout"])
        .arg(&layout)
        .arg("--jjb")
        .arg(tmp.path().join("jjb"))
        .arg("--dependencies")
        .arg(tmp.path().join("zuul/dependencies.yaml"))
        .arg("--out")
        .arg(&out)
        .arg("--report")
        .arg(&report));
    assert!(config_check(&out).contains("2200 projects"));
    let r: serde_json::Value = serde_json::from_str(&read(&report)).unwrap();
    assert_eq!(r["projects"], 2200);
    assert_eq!(r["counts"]["not_mapped"], 0, "{}", r["items"][0]);
    assert_eq!(r["counts"]["approximate"], 0, "{}", r["items"][0]["reason"]);
    assert!(r["unpinned_images"].as_array().unwrap().is_empty());
    let check = |out: &Path| {
        output(
            seakeeper()
                .args(["import", "zuul", "--check", "--layout"])
                .arg(&layout)
                .arg("--out")
                .arg(out),
        )
    };
    let same = check(&out);
    assert!(same.status.success(), "{}", stdout(&same));
    // A hand-made difference: one job taken out of one project's gate.
    let name = zuul_world::project_name(8);
    let p = out.join(format!("pipelines/{name}.yaml"));
    let text = read(&p).replace("  gate:\n  - Tool0008-tox\n", "  gate: []\n");
    std::fs::write(&p, text).unwrap();
    let differs = check(&out);
    assert_eq!(differs.status.code(), Some(1));
    assert_eq!(
        stdout(&differs).trim(),
        format!("- {name} gate Tool0008-tox")
    );
}

/// The daemon runs a project's central pipeline file when its repository has none: a periodic
/// job that only the config repo declares runs from a real reconcile pass.
#[test]
fn issue_20_a_repository_without_a_pipeline_file_runs_its_central_one() {
    use support::site::{IMAGE, Site};
    let site = Site::new("", "");
    site.write_config(
        "schedules.yaml",
        "schedules:\n  - {name: every-minute, cron: \"* * * * *\", project: acme/api}\n",
    );
    site.write_config(
        "projects/acme/api.yaml",
        "pipelines: [check, post-merge, periodic]\nimages: [api]\n",
    );
    site.write_config(
        "pipelines/acme/api.yaml",
        &format!(
            "jobs:\n  nightly:\n    image: {IMAGE}\n    commands: [\"true\"]\n    timeout: 1m\npipelines:\n  periodic: [nightly]\n"
        ),
    );
    site.commit_config("Keep acme/api's jobs centrally");
    let w = site.clone("acme/api");
    std::fs::write(w.join("README"), "no pipeline file here\n").unwrap();
    git(&w, &["add", "-A"]);
    git(
        &w,
        &[
            "commit",
            "-q",
            "-m",
            "A repository without .pipeline/config.yaml",
        ],
    );
    site.merge("acme/api");
    let out = site.reconcile();
    assert!(
        out.contains("[periodic] acme/api refs/heads/main: build periodic-"),
        "{out}"
    );
    assert!(out.contains("seakeeper periodic: SUCCESS"), "{out}");
}

/// `job run` on a repository without a pipeline file runs its central one, as CI would.
#[test]
fn issue_20_job_run_uses_the_central_pipeline_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("jjb")).unwrap();
    std::fs::write(
        tmp.path().join("jjb/jobs.yaml"),
        "- job:\n    name: lint\n    builders:\n      - shell: echo central-job-ran\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("layout.yaml"),
        "pipelines:\n  - name: test\n    manager: IndependentPipelineManager\n    trigger:\n      gerrit:\n        - event: patchset-created\nprojects:\n  - name: acme/api\n    test: [lint]\n",
    )
    .unwrap();
    let config = tmp.path().join("config");
    ok(seakeeper()
        .args(["import", "zuul", "--offline", "--layout"])
        .arg(tmp.path().join("layout.yaml"))
        .arg("--jjb")
        .arg(tmp.path().join("jjb"))
        .arg("--out")
        .arg(&config));
    config_check(&config);
    let repo = tmp.path().join("api");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "-b", "main"]);
    std::fs::write(repo.join("README"), "no pipeline file\n").unwrap();
    git(&repo, &["add", "-A"]);
    git_with(&repo, &["commit", "--quiet", "-m", "init"], &FIXED_DATES);
    let out = output(
        seakeeper()
            .args([
                "job",
                "run",
                "lint",
                "--host-tools",
                "--project",
                "acme/api",
                "--repo",
            ])
            .arg(&repo)
            .arg("--state")
            .arg(tmp.path().join("state"))
            .arg("--config-repo")
            .arg(&config),
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("central-job-ran"), "{}", stdout(&out));
}
