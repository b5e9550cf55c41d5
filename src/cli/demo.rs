//! `seakeeper demo [--dir DIR]`: the whole flow on one machine with no servers (the embedded
//! default: local executor, `file://` repositories with Gerrit's NoteDb for changes and votes,
//! OCI image-layout registries, Gerrit reporting off). It builds a world (config repo, two
//! projects, three environments), proposes two changes and checks them, approves both: the
//! gate tests the second on top of the first, the first fails and leaves, the second is tested
//! again without it and lands as exactly the commit that was tested; the image the gate built
//! from that commit is attested and enters testing (built once: post-merge does not build it
//! again), and the dependent project is built; the
//! image is promoted to staging, a production freeze holds the next promotion, and the image
//! is traced through the ledger back to the change and its landing. The world stays in DIR to
//! explore with `seakeeper` and plain git.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::daemon::{Daemon, Options, Settings};
use crate::ledger::{self, Ledger, VerifyOptions};
use crate::model::{Digest, EnvironmentName, ImageName, Record};
use crate::signing::{self, Keyring};

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Where to build the demo world (must not exist or be empty).
    #[arg(long, default_value = "seakeeper-demo")]
    dir: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Demo Developer")
        .env("GIT_AUTHOR_EMAIL", "dev@demo.invalid")
        .env("GIT_COMMITTER_NAME", "Demo Developer")
        .env("GIT_COMMITTER_EMAIL", "dev@demo.invalid")
        .stdin(Stdio::null())
        .output()
        .context("running git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(path, text).with_context(|| path.display().to_string())
}

/// Commits everything in the work tree `repo` as `author` and returns the commit.
fn commit(repo: &Path, message: &str, author: &str) -> anyhow::Result<String> {
    git(repo, &["add", "-A"])?;
    git(
        repo,
        &["commit", "--quiet", "--author", author, "-m", message],
    )?;
    git(repo, &["rev-parse", "HEAD"])
}

/// A project: a bare repository (what Gerrit would serve) and a work tree to make commits in.
struct Project {
    work: PathBuf,
}

impl Project {
    fn create(git_root: &Path, work_root: &Path, name: &str) -> anyhow::Result<Project> {
        let bare = git_root.join(format!("{name}.git"));
        let work = work_root.join(name);
        std::fs::create_dir_all(&bare)?;
        git(&bare, &["init", "--quiet", "--bare", "-b", "main"])?;
        std::fs::create_dir_all(&work)?;
        git(&work, &["init", "--quiet", "-b", "main"])?;
        git(
            &work,
            &["remote", "add", "origin", &bare.display().to_string()],
        )?;
        Ok(Project { work })
    }

    /// The bare repository (what Gerrit would serve).
    fn bare(&self) -> anyhow::Result<PathBuf> {
        Ok(PathBuf::from(git(
            &self.work,
            &["remote", "get-url", "origin"],
        )?))
    }

    /// Records in the change's NoteDb meta ref (`refs/changes/XX/N/meta`), as Gerrit does,
    /// one update by `who` (`Name <account@server>`) with `footers`, returning nothing.
    fn note(&self, change: u32, who: &str, message: &str, footers: &str) -> anyhow::Result<()> {
        let bare = self.bare()?;
        let meta = format!("refs/changes/{:02}/{change}/meta", change % 100);
        let parent = git(&bare, &["rev-parse", "--verify", "-q", &meta]).ok();
        let (name, email) = who
            .split_once(" <")
            .map(|(n, e)| (n, e.trim_end_matches('>')))
            .unwrap_or((who, "0@demo"));
        let text = format!("{message}\n\n{footers}");
        let mut args = vec![
            "commit-tree",
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            "-m",
            &text,
        ];
        if let Some(p) = &parent {
            args.push("-p");
            args.push(p);
        }
        let out = Command::new("git")
            .arg("-C")
            .arg(&bare)
            .args(&args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", name)
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_COMMITTER_NAME", "Gerrit Code Review")
            .env("GIT_COMMITTER_EMAIL", "gerrit@demo.invalid")
            .stdin(Stdio::null())
            .output()
            .context("running git")?;
        if !out.status.success() {
            bail!(
                "git commit-tree: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        git(&bare, &["update-ref", &meta, &id])?;
        Ok(())
    }

    /// Uploads the work tree's HEAD as patch set 1 of change `change` (its ref and its
    /// NoteDb "create change" update), and returns the commit.
    fn upload(&self, change: u32, subject: &str) -> anyhow::Result<String> {
        let commit = git(&self.work, &["rev-parse", "HEAD"])?;
        self.push(&format!("refs/changes/{:02}/{change}/1", change % 100))?;
        self.note(
            change,
            "Dev <1000001@demo>",
            "Create change\n\nUploaded patch set 1.",
            &format!(
                "Patch-set: 1\nChange-id: I{change:040}\nSubject: {subject}\nBranch: refs/heads/main\nStatus: new\nCommit: {commit}\n"
            ),
        )?;
        Ok(commit)
    }

    /// A reviewer's Code-Review+2 on patch set 1 of `change`, in its NoteDb.
    fn approve(&self, change: u32) -> anyhow::Result<()> {
        self.note(
            change,
            "Reviewer <1000002@demo>",
            "Update patch set 1\n\nPatch Set 1: Code-Review+2",
            "Patch-set: 1\nLabel: Code-Review=+2\n",
        )
    }

    /// Pushes the work tree's HEAD to `target` in the bare repository.
    fn push(&self, target: &str) -> anyhow::Result<()> {
        git(
            &self.work,
            &["push", "--quiet", "origin", &format!("HEAD:{target}")],
        )?;
        Ok(())
    }
}

pub(super) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} already exists and is not empty; pass --dir to choose another place",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let started = std::time::Instant::now();
    let exe = std::env::current_exe()
        .map_or_else(|_| "seakeeper".to_owned(), |p| p.display().to_string());

    println!("1. A signing key for the CI (OpenPGP v4, Ed25519)");
    let (secret, public) = signing::generate_key("seakeeper demo CI <ci@demo.invalid>")?;
    let key_path = dir.join("ci-key.asc");
    let cert_path = dir.join("ci-cert.asc");
    signing::write_new_file(&key_path, &secret, 0o600)?;
    signing::write_new_file(&cert_path, &public, 0o644)?;

    println!(
        "2. Two projects (api, and web which depends on api), served from {}/git",
        dir.display()
    );
    let git_root = dir.join("git");
    let work_root = dir.join("work");
    let state = dir.join("state");
    let images = crate::registry::layout::OciLayout::open_or_init(&state.join("images"))?;
    // A small base image, pinned by digest as trusted pipelines require.
    let base_dir = dir.join("work/base");
    write(
        &base_dir.join("etc/demo-release"),
        "seakeeper demo base 1\n",
    )?;
    // Jobs run in it: a static busybox is its shell and tools (`sh` runs busybox's applets
    // without links), else jobs run with this machine's tools.
    let busybox = Path::new("/bin/busybox");
    let mut base_files = BTreeMap::from([(
        "etc/demo-release".to_owned(),
        base_dir.join("etc/demo-release"),
    )]);
    let host_tools = !busybox.is_file();
    if !host_tools {
        base_files.insert("bin/sh".to_owned(), busybox.to_owned());
        base_files.insert("bin/busybox".to_owned(), busybox.to_owned());
    }
    let base = crate::registry::assemble::assemble(
        &images,
        &crate::registry::assemble::ImageSpec {
            files: base_files,
            prefix: String::new(),
            base: None,
            entrypoint: Vec::new(),
            env: BTreeMap::from([("PATH".to_owned(), "/bin".to_owned())]),
            labels: BTreeMap::new(),
            working_dir: None,
        },
    )?;
    let base_ref = format!("registry.demo.invalid/base@{}", base.digest);
    let api = Project::create(&git_root, &work_root, "api")?;
    write(
        &api.work.join("src/app.sh"),
        "#!/bin/sh\necho \"hello from api $(cat \"$(dirname \"$0\")/version.txt\")\"\n",
    )?;
    write(&api.work.join("src/version.txt"), "v1\n")?;
    let pipeline = |image: &str, test: &str| {
        format!(
            r#"jobs:
  test:
    image: {base_ref}
    commands:
      - sh src/app.sh | grep -q hello
      - {test}
    timeout: 2m
  build:
    image: {base_ref}
    commands:
      - mkdir -p dist
      - cp src/* dist/
    timeout: 2m
    outputs:
      files: ["dist/**"]
      images:
        - name: {image}
          base: {base_ref}
          files: ["dist/**"]
          entrypoint: ["/bin/sh", "/srv/dist/app.sh"]
pipelines:
  check: [test]
  gate: [test, build]
  post-merge: [build]
"#
        )
    };
    write(
        &api.work.join(".pipeline/config.yaml"),
        &pipeline("api", "echo unit tests pass"),
    )?;
    commit(&api.work, "Initial import of api", "Dev <dev@demo.invalid>")?;
    api.push("refs/heads/main")?;
    let web = Project::create(&git_root, &work_root, "web")?;
    write(
        &web.work.join("src/app.sh"),
        "#!/bin/sh\necho \"hello from web\"\n",
    )?;
    write(
        &web.work.join(".pipeline/config.yaml"),
        &pipeline("web", "echo web tests pass"),
    )?;
    commit(&web.work, "Initial import of web", "Dev <dev@demo.invalid>")?;
    web.push("refs/heads/main")?;

    println!(
        "3. The config repo at {}/config: environments testing -> staging -> production",
        dir.display()
    );
    let config = dir.join("config");
    std::fs::create_dir_all(&config)?;
    git(&config, &["init", "--quiet", "-b", "main"])?;
    let registry = |name: &str| format!("oci:{}/registries/{name}", dir.display());
    write(
        &config.join("seakeeper.yaml"),
        &format!(
            r#"public_url: https://ci.demo.invalid
gerrit:
  url: file://{git}
  report: false
registries:
  testing: {{ url: "{t}" }}
  staging: {{ url: "{s}" }}
  production: {{ url: "{p}" }}
executor:
  kind: local
  concurrency: 4
"#,
            git = git_root.display(),
            t = registry("testing"),
            s = registry("staging"),
            p = registry("production"),
        ),
    )?;
    write(
        &config.join("environments.yaml"),
        "environments:\n  - name: testing\n    registry: testing\n  - name: staging\n    registry: staging\n  - name: production\n    registry: production\n",
    )?;
    write(
        &config.join("projects/api.yaml"),
        "pipelines: [check, gate, post-merge]\nimages: [api]\n",
    )?;
    write(
        &config.join("projects/web.yaml"),
        "pipelines: [check, gate, post-merge]\ndepends_on: [api]\nimages: [web]\n",
    )?;
    commit(
        &config,
        "Initial configuration",
        "RelEng <releng@demo.invalid>",
    )?;

    let sandbox = if which("bwrap") { "auto" } else { "none" };
    if sandbox == "none" {
        println!(
            "   note: bubblewrap is not installed, so jobs run WITHOUT a sandbox and with this \
             machine's tools (apt-get install bubblewrap)"
        );
    }
    let host_tools = host_tools || sandbox == "none";
    if host_tools && sandbox != "none" {
        println!(
            "   note: no /bin/busybox for the base image, so jobs run with this machine's tools \
             (apt-get install busybox-static)"
        );
    }
    let settings_path = dir.join("settings.yaml");
    write(
        &settings_path,
        &format!(
            "state_dir: state\nledger_dir: ledger\nsigning_key: ci-key.asc\nconfig_repo: {}\nsandbox: {sandbox}\nhost_tools: {host_tools}\n",
            config.display()
        ),
    )?;
    let settings = Settings::load(&settings_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let reporter: crate::apply::Reporter = Arc::new(|line: &str| {
        for l in line.trim_end().lines() {
            println!("   | {l}");
        }
    });
    let mut daemon = Daemon::open(
        settings,
        Options {
            reporter,
            concurrency: None,
            supervisor: crate::daemon::this_program(),
            init_ledger: true,
        },
    )?;
    let pass = |d: &mut Daemon| -> anyhow::Result<()> {
        let failed = super::serve::run_once(d, true)?;
        if failed > 0 {
            bail!("{failed} actions failed (see above)");
        }
        Ok(())
    };

    println!(
        "4. First pass: seakeeper starts the ledger and takes the projects' refs as its baseline"
    );
    pass(&mut daemon)?;
    println!("   ledger at {}/ledger", dir.display());

    println!(
        "5. Two developers propose changes to api: change 1 breaks its tests, change 2 says v2; check runs both"
    );
    let main_tip = git(&api.work, &["rev-parse", "HEAD"])?;
    write(
        &api.work.join("src/app.sh"),
        "#!/bin/sh\necho \"goodbye from api\"\n",
    )?;
    commit(&api.work, "Say goodbye", "Dev <dev@demo.invalid>")?;
    api.upload(1, "Say goodbye")?;
    git(&api.work, &["checkout", "--quiet", "--detach", &main_tip])?;
    write(&api.work.join("src/version.txt"), "v2\n")?;
    let change = commit(&api.work, "Say v2", "Dev <dev@demo.invalid>")?;
    api.upload(2, "Say v2")?;
    pass(&mut daemon)?;

    println!(
        "6. A reviewer gives both Code-Review+2 (in Gerrit's NoteDb): the gate tests change 2 on top of change 1,"
    );
    println!(
        "   change 1 fails and leaves, change 2 is tested again without it and lands as the commit that was tested;"
    );
    println!(
        "   post-merge then builds, attests and pushes the api image to testing, and builds web"
    );
    api.approve(1)?;
    api.approve(2)?;
    pass(&mut daemon)?;
    let landed = git(&api.bare()?, &["rev-parse", "refs/heads/main"])?;
    {
        let _packs = crate::ledger::read_guard();
        let l = Ledger::open(&dir.join("ledger"))?;
        let snapshot = l.snapshot()?;
        let Some(build_dir) = snapshot.landed_as(&landed.parse()?)? else {
            bail!("change 2 did not land; see the output above");
        };
        let Some(Record::Landing(landing)) =
            snapshot.record(&format!("{build_dir}/landing.yaml"))?
        else {
            bail!("{build_dir} holds no landing");
        };
        println!(
            "   change {},{} landed on main as {} (main was {}); gate build {} tested exactly {}",
            landing.change,
            landing.patchset,
            landing.commit,
            landing.old_tip,
            landing.build_id,
            landing.commit
        );
    }
    let packs = crate::ledger::read_guard();
    let l = Ledger::open(&dir.join("ledger"))?;
    let testing: EnvironmentName = "testing".parse()?;
    let image: ImageName = "api".parse()?;
    let digest: Digest = match l
        .snapshot()?
        .record(&crate::ledger::layout::promotion_pointer(&testing, &image))?
    {
        Some(Record::Promotion(p)) => p.digest,
        _ => bail!("the api image did not reach testing; see the output above"),
    };
    drop(l);
    drop(packs);
    println!("   api {digest} runs in testing (built from {change})");

    println!(
        "7. The release manager promotes it to staging by changing one line of the config repo"
    );
    write(
        &config.join("promotions/staging.yaml"),
        &format!("images:\n  api: {digest}\n"),
    )?;
    commit(
        &config,
        "Promote api to staging",
        "Release Manager <rm@demo.invalid>",
    )?;
    pass(&mut daemon)?;

    println!("8. RelEng freezes production; the next promotion is held, with the freeze's reason");
    write(
        &config.join("freezes/end-of-year.yaml"),
        "scope: [\"promote:production\"]\nreason: End-of-year freeze; production changes need an exception.\nticket: T1234\n",
    )?;
    let freeze = commit(
        &config,
        "Freeze production for the end of the year",
        "RelEng <releng@demo.invalid>",
    )?;
    write(
        &config.join("promotions/production.yaml"),
        &format!("images:\n  api: {digest}\n"),
    )?;
    commit(
        &config,
        "Promote api to production",
        "Release Manager <rm@demo.invalid>",
    )?;
    pass(&mut daemon)?;
    for line in daemon.status().render().lines() {
        println!("   {line}");
    }
    daemon.shutdown();
    drop(daemon);

    println!("9. Tracing the image: build, source commit, attestation, every promotion");
    let l = Ledger::open(&dir.join("ledger"))?;
    if let Some(trace) = l.snapshot()?.trace_digest(&digest)? {
        super::trace::print_trace(&trace, "   ");
    }

    println!("10. Verifying every ledger commit: signatures, keys, schemas, indexes");
    let mut ring = Keyring::new();
    ring.add_cert_bytes(&public, "the demo cert")?;
    let report = ledger::verify(
        &l,
        &VerifyOptions {
            pinned: Some(ring),
            authority: None,
            history: None,
        },
    )?;
    println!(
        "   ok: {} commits, {} records",
        report.commits, report.records
    );

    println!(
        "\nDone in {:.1} s. The world is in {}; explore it with seakeeper and plain git:",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    let d = dir.display();
    let s = settings_path.display();
    println!("   {exe} status --settings {s}");
    println!("   {exe} trace {digest} --ledger {d}/ledger --cert {d}/ci-cert.asc");
    println!("   git -C {d}/ledger log --format='%h %s'");
    println!("   git -C {d}/config log --oneline");
    println!(
        "   # lift the freeze (a revert, as RelEng would merge it), then one more pass promotes api:"
    );
    println!(
        "   git -C {d}/config -c user.name=RelEng -c user.email=releng@demo.invalid revert --no-edit {freeze}"
    );
    println!("   {exe} reconcile --once --settings {s}");
    println!(
        "   GNUPGHOME=$(mktemp -d) sh -c 'gpg -q --import {} && git -C {d}/ledger verify-commit HEAD'",
        cert_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}
