//! Import benchmark: `seakeeper import zuul` of a generated Wikimedia-sized Zuul v2 layout
//! (2,200 projects, with its JJB files and dependencies.yaml), and `config check` of the
//! result (read from the directory, loaded, every central pipeline file checked), against
//! the baseline of the config loader's cold load of the synthetic sample world with as many
//! projects (fixtures/make-sample-world plus generated projects, as benches/config.rs makes
//! it), read the same way, in the same run.
//!
//! Run: `cargo bench --bench import -- [--projects N]`. Under `cargo test` it is a smoke test.

#[path = "../tests/support/zuul_world.rs"]
mod zuul_world;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use seakeeper::import::{self, images::Resolve, map::Options};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The sample world's config repo with `projects` generated projects (as benches/config.rs).
fn sample_world(dir: &Path, projects: usize) -> std::path::PathBuf {
    let world = dir.join("world");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-sample-world");
    let out = Command::new(&script)
        .arg(&world)
        .output()
        .expect("make-sample-world");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repo = world.join("config");
    for i in 0..projects {
        let group = i / 100;
        let path = repo.join(format!(
            "projects/wikimedia/group{group:02}/project{i:04}.yaml"
        ));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let deps = if i % 100 == 0 {
            String::new()
        } else {
            format!(
                "depends_on: [wikimedia/group{group:02}/project{:04}]\n",
                group * 100
            )
        };
        std::fs::write(
            &path,
            format!("queue: group{group:02}\npipelines: [check, gate, post-merge]\n{deps}branches: [main, wmf/1.{i}]\n"),
        )
        .expect("write");
    }
    repo
}

/// `config check` of a directory: read every file, load, check.
fn check(dir: &Path) -> usize {
    let files = import::check::read_tree(dir).expect("read");
    let layout = seakeeper::config::load(&files).expect("a valid config");
    layout.projects.len()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut projects = if bench { 2200 } else { 200 };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--projects" {
            projects = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--projects takes a number");
        }
    }
    let runs = if bench { 7 } else { 2 };
    let tmp = tempfile::tempdir().expect("temp dir");
    zuul_world::write(tmp.path(), projects);
    let opts = Options {
        public_url: "https://ci.example.org".into(),
        gerrit_url: None,
        registry_url: "https://registry.example.org".into(),
        default_image: "docker-registry.wikimedia.org/releng/ci-bookworm:latest".into(),
        entrypoint: "/run.sh".into(),
        default_branch: "master".into(),
        resolve: Resolve::Offline,
    };

    // Import: read the layout, the JJB files and the dependencies, map, check, write.
    let mut imports = Vec::new();
    let mut out = tmp.path().join("out-0");
    let mut file_count = 0;
    for i in 0..runs {
        out = tmp.path().join(format!("out-{i}"));
        let t = Instant::now();
        let layout = import::zuul::read(
            import::yaml::load(&tmp.path().join("zuul/layout.yaml")).expect("layout"),
        )
        .expect("layout");
        let jobs = import::jjb::read(&tmp.path().join("jjb")).expect("jjb");
        let deps = import::zuul::dependencies(
            &import::yaml::load(&tmp.path().join("zuul/dependencies.yaml")).expect("deps"),
        )
        .expect("deps");
        let imported = import::map::import(&layout, &jobs, Some(&deps), &opts).expect("import");
        import::write::repo(&out, &imported.files).expect("write");
        imports.push(t.elapsed());
        file_count = imported.files.len();
    }

    // config check of the imported repo.
    let mut checks = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        assert_eq!(check(&out), projects);
        checks.push(t.elapsed());
    }

    // Baseline: the config loader's cold load of the sample world of the same size.
    let sample = sample_world(tmp.path(), projects);
    let mut baseline = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        assert!(check(&sample) >= projects);
        baseline.push(t.elapsed());
    }
    let (imports, checks, baseline) = (median(imports), median(checks), median(baseline));
    println!(
        "# import: a generated Zuul v2 layout of {projects} projects ({file_count} files written)"
    );
    println!(
        "baseline   config loader, cold, sample world of {projects} projects:  median {:>9.2} ms",
        ms(baseline)
    );
    println!(
        "seakeeper  import zuul (read, map, check, write):               median {:>9.2} ms  ratio {:>6.1}x baseline",
        ms(imports),
        ms(imports) / ms(baseline)
    );
    println!(
        "seakeeper  config check of the imported repo:                   median {:>9.2} ms  ratio {:>6.1}x baseline",
        ms(checks),
        ms(checks) / ms(baseline)
    );
}
