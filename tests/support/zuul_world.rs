//! A generated Wikimedia-sized Zuul v2 world: `zuul/layout.yaml` with `projects` projects
//! (70% extensions, 10% skins, 20% other repositories), `zuul/dependencies.yaml`, and the JJB
//! files defining every job they run, for tests/import.rs and benches/import.rs. Images are
//! pinned by digest, so an import needs no registry; every job runs in a `docker run`.

use std::fmt::Write as _;
use std::path::Path;

/// A fixed digest for image `n`.
fn digest(n: usize) -> String {
    format!("{n:064x}")
}

/// The Gerrit name of project `i`.
pub fn project_name(i: usize) -> String {
    match i % 10 {
        0..=6 => format!("mediawiki/extensions/Ext{i:04}"),
        7 => format!("mediawiki/skins/Skin{i:04}"),
        _ => format!("tools/Tool{i:04}"),
    }
}

/// Writes the world under `dir` (`zuul/` and `jjb/`).
pub fn write(dir: &Path, projects: usize) {
    std::fs::create_dir_all(dir.join("zuul")).expect("mkdir zuul");
    std::fs::create_dir_all(dir.join("jjb")).expect("mkdir jjb");
    let mut layout = String::from(
        "pipelines:\n\
         - name: test\n  manager: IndependentPipelineManager\n  trigger:\n    gerrit:\n      - event: patchset-created\n  success: &ok\n    gerrit:\n      verified: 1\n  failure: &fail\n    gerrit:\n      verified: -1\n\
         - name: gate-and-submit\n  manager: DependentPipelineManager\n  window: 20\n  window-floor: 3\n  trigger:\n    gerrit:\n      - event: comment-added\n        approval:\n          - code-review: 2\n  success: *ok\n  failure: *fail\n\
         - name: postmerge\n  manager: IndependentPipelineManager\n  trigger:\n    gerrit:\n      - event: change-merged\n\
         - name: daily\n  manager: IndependentPipelineManager\n  trigger:\n    timer:\n      - time: '0 4 * * *'\n\
         project-templates:\n\
         - name: extension-unittests\n  test: &ext\n    - quibble-vendor-mysql-php74\n    - quibble-vendor-mysql-php81\n  gate-and-submit: *ext\n\
         - name: extension-gate\n  template:\n    - name: extension-unittests\n  test:\n    - mwext-phan\n  gate-and-submit:\n    - mwext-phan\n\
         - name: tool-tox\n  test:\n    - '{name}-tox'\n  gate-and-submit:\n    - '{name}-tox'\n  postmerge:\n    - '{name}-tox':\n        - '{name}-publish'\n\
         jobs:\n",
    );
    // Job rules, as real layouts have hundreds: regular expressions matched against every job.
    for i in (0..projects).filter(|i| i % 10 >= 8).take(300) {
        let _ = writeln!(layout, "  - name: ^Tool{i:04}-.*$\n    voting: true");
    }
    layout.push_str("projects:\n");
    let mut tools = Vec::new();
    let mut deps = String::new();
    for i in 0..projects {
        let name = project_name(i);
        let _ = writeln!(layout, "  - name: {name}\n    template:");
        match i % 10 {
            0..=6 => {
                let _ = writeln!(layout, "      - name: extension-gate");
                // Every extension but the first of each ten needs that first one.
                if i % 10 != 0 {
                    let _ = writeln!(deps, "Ext{i:04}: [Ext{:04}]", i - i % 10);
                }
            }
            7 => {
                let _ = writeln!(layout, "      - name: extension-unittests");
                let _ = writeln!(deps, "skins/Skin{i:04}: [Ext{:04}]", i - 7);
            }
            _ => {
                let _ = writeln!(layout, "      - name: tool-tox");
                tools.push(format!("Tool{i:04}"));
            }
        }
        if i == 0 {
            let _ = writeln!(layout, "    daily:\n      - quibble-vendor-mysql-php81");
        }
    }
    std::fs::write(dir.join("zuul/layout.yaml"), layout).expect("write layout");
    std::fs::write(dir.join("zuul/dependencies.yaml"), deps).expect("write dependencies");

    let image = |n: usize, name: &str| {
        format!(
            "docker-registry.wikimedia.org/releng/{name}@sha256:{}",
            digest(n)
        )
    };
    let mut jjb = format!(
        "- defaults:\n    name: global\n    wrappers:\n      - timeout:\n          timeout: 45\n\
         - builder:\n    name: quibble\n    builders:\n      - shell: |\n          docker run --rm -e QUIBBLE_DB={{database}} {{image}} quibble --packages-source {{source}} --db {{database}}\n\
         - job-template:\n    name: 'quibble-{{source}}-{{database}}-{{php}}'\n    builders:\n      - quibble:\n          image: '{{image}}'\n          source: '{{source}}'\n          database: '{{database}}'\n\
         - job-group:\n    name: quibble-jobs\n    jobs:\n      - 'quibble-{{source}}-{{database}}-{{php}}'\n\
         - project:\n    name: mediawiki\n    source: vendor\n    database: mysql\n    php:\n      - php74:\n          image: {}\n      - php81:\n          image: {}\n    jobs:\n      - quibble-jobs\n\
         - job:\n    name: mwext-phan\n    builders:\n      - shell: docker run --rm {} phan --long-progress-bar\n",
        image(1, "quibble-php74:1.0"),
        image(2, "quibble-php81:1.0"),
        image(3, "phan:1.0"),
    );
    let _ = write!(
        jjb,
        "- job-template:\n    name: '{{tool}}-tox'\n    builders:\n      - shell: docker run --rm {} tox -e py3\n\
         - job-template:\n    name: '{{tool}}-publish'\n    builders:\n      - shell: docker run --rm {} tox -e doc\n\
         - project:\n    name: tools\n    tool:\n",
        image(4, "tox:1.0"),
        image(4, "tox:1.0"),
    );
    for t in &tools {
        let _ = writeln!(jjb, "      - {t}");
    }
    jjb.push_str("    jobs:\n      - '{tool}-tox'\n      - '{tool}-publish'\n");
    std::fs::write(dir.join("jjb/jobs.yaml"), jjb).expect("write jjb");
}
