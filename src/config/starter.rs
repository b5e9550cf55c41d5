//! A starter config repo (`seakeeper init config DIR`): every file a new deployment needs,
//! commented, each naming its JSON Schema for editors, that passes `config check` as written.
//! Pure: it returns the files; the command writes them.

use crate::model::ProjectName;

/// What the starter is made for.
#[derive(Debug, Clone)]
pub struct Starter {
    /// Where seakeeper's pages are served (`public_url`).
    pub public_url: String,
    /// The Gerrit server, if any.
    pub gerrit: Option<String>,
    /// Registries of the three environments, in order: (environment, registry URL).
    pub registries: Vec<(String, String)>,
    /// The first project.
    pub project: ProjectName,
    /// The server's public certificate (armored) and the name it goes under in `keys/`.
    pub key: Option<(String, String)>,
    /// The image the template's jobs run in (pinned by digest).
    pub image: String,
}

/// The schema of a config file, as a comment editors read (`yaml-language-server`), relative
/// to seakeeper's own repository.
fn schema(name: &str) -> String {
    format!(
        "# yaml-language-server: $schema=https://seakeeper.invalid/state-schema/config/v1/{name}.schema.json\n\
         # (in seakeeper's repository: state-schema/config/v1/{name}.schema.json)\n"
    )
}

impl Starter {
    /// The files, as (path in the repo, content).
    pub fn files(&self) -> Vec<(String, String)> {
        let mut files = Vec::new();
        let mut settings = schema("seakeeper");
        settings.push_str(&format!(
            "# Connections and defaults. Checked by `seakeeper config check`.\n\
             # Where seakeeper's pages are served; Gerrit comments link here.\n\
             public_url: {}\n",
            self.public_url
        ));
        if let Some(g) = &self.gerrit {
            settings.push_str(&format!(
                "# The Gerrit server seakeeper watches and reports to (its account is in the\n\
                 # server's secrets file, never here).\ngerrit:\n  url: {g}\n"
            ));
        }
        settings.push_str(
            "# Registries by name; environments.yaml says which one each uses.\nregistries:\n",
        );
        for (env, url) in &self.registries {
            settings.push_str(&format!("  {env}: {{ url: \"{url}\" }}\n"));
        }
        settings.push_str(
            "# How jobs run: `local` (bubblewrap on this server) or `kubernetes`.\n\
             executor:\n  kind: local\n  concurrency: 4\n\
             # The gate: Zuul's window of 20 (floor 3); a change enters with Code-Review+2.\n\
             gate:\n  window: 20\n  window_floor: 3\n",
        );
        files.push(("seakeeper.yaml".to_owned(), settings));

        let mut envs = schema("environments");
        envs.push_str(
            "# The order images are promoted in; a promotion is a change to promotions/<env>.yaml.\n\
             environments:\n",
        );
        for (env, _) in &self.registries {
            envs.push_str(&format!("  - name: {env}\n    registry: {env}\n"));
        }
        files.push(("environments.yaml".to_owned(), envs));

        let mut project = schema("project");
        project.push_str(
            "# A project seakeeper builds: its pipelines (its jobs are in its own\n\
             # .pipeline/config.yaml, see templates/default.yaml) and the images it produces.\n\
             pipelines: [check, gate, post-merge]\n",
        );
        files.push((format!("projects/{}.yaml", self.project), project));

        let mut template = schema("template");
        template.push_str(&format!(
            "# Jobs of a project's .pipeline/config.yaml start from this with `use: default`.\n\
             image: {}\n\
             commands:\n  - make test\n\
             timeout: 20m\n",
            self.image
        ));
        files.push(("templates/default.yaml".to_owned(), template));

        for (name, text) in super::policies::DEFAULTS {
            let stem = name.trim_end_matches(".yaml");
            let mut t = schema(&format!("policy-{stem}"));
            t.push_str(
                "# The default seakeeper ships; change it by review like everything here.\n",
            );
            t.push_str(text);
            files.push((format!("policies/{name}"), t));
        }

        if let Some((name, cert)) = &self.key {
            files.push((format!("keys/{name}.asc"), cert.clone()));
            files.push((
                format!("keys/{name}.yaml"),
                "# The roles of the server's key: it signs the ledger, records builds and their\n\
                 # attestations, and records promotions.\nroles: [ledger, builder, promoter]\n"
                    .to_owned(),
            ));
        }

        files.push((
            "README.md".to_owned(),
            format!(
                "# seakeeper configuration\n\n\
                 Everything about this delivery pipeline is a reviewed change to this repository:\n\n\
                 - `seakeeper.yaml`: connections (Gerrit, registries) and defaults;\n\
                 - `environments.yaml`: the environments images are promoted through, in order;\n\
                 - `projects/<name>.yaml`: the projects built, their pipelines and images;\n\
                 - `templates/`: job templates a project's `.pipeline/config.yaml` can `use`;\n\
                 - `policies/`: trust, images, timeouts, secrets, promotion, retention, limits;\n\
                 - `keys/`: the certificates whose signatures are trusted, with their roles;\n\
                 - `promotions/<env>.yaml` and `freezes/`: what runs where, and what is held.\n\n\
                 Check a change before proposing it: `seakeeper config check --repo .`\n\n\
                 The first project is `{}`. Its repository needs a `.pipeline/config.yaml`, for example:\n\n\
                 ```yaml\njobs:\n  unit:\n    use: default\npipelines:\n  check: [unit]\n  gate: [unit]\n```\n",
                self.project
            ),
        ));
        files
    }
}
