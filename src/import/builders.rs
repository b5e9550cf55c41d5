//! A JJB `shell` builder read for what runs: a `docker run` of a CI image becomes the job's
//! image, its `-e` environment and its command; any other script runs as it is. Host-side
//! lines around a `docker run` (log directories, `docker pull`) and host volumes have no
//! counterpart in a seakeeper job and are noted, never silently dropped.

use super::Fidelity;
use super::jjb::Job;

/// `docker run` options that take no value.
const FLAGS: [&str; 16] = [
    "--rm",
    "-t",
    "--tty",
    "-i",
    "--interactive",
    "--init",
    "-d",
    "--detach",
    "--privileged",
    "-it",
    "-ti",
    "--read-only",
    "-P",
    "--publish-all",
    "--sig-proxy",
    "-q",
];

/// Splits one line of shell into words: quotes grouped, backslashes escape, `#` starts a
/// comment; `None` for an unterminated quote.
fn words(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut started = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            '#' if !started => break,
            '\'' => {
                started = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        x => cur.push(x),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => cur.push(chars.next()?),
                        x => cur.push(x),
                    }
                }
            }
            '\\' => {
                started = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            x => {
                started = true;
                cur.push(x);
            }
        }
    }
    if started {
        out.push(cur);
    }
    Some(out)
}

/// A word quoted for a shell, when it needs to be.
fn quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// What one `docker run` line says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DockerRun {
    /// The image reference.
    pub image: String,
    /// `-e K=V`.
    pub env: Vec<(String, String)>,
    /// `-e K` or `-e K=$OTHER` (taken from the host).
    pub host_env: Vec<String>,
    /// `-e K=$ZUUL_X`: Zuul's variable, and seakeeper's that says the same.
    pub from_seakeeper: Vec<(String, String)>,
    /// `-v`/`--volume`/`--mount`.
    pub volumes: Vec<String>,
    /// `--entrypoint`.
    pub entrypoint: Option<String>,
    /// The arguments after the image.
    pub args: Vec<String>,
}

/// seakeeper's variable for a value that is exactly one of Zuul's (`$ZUUL_X` or `${ZUUL_X}`).
fn zuul_variable(value: &str) -> Option<&'static str> {
    let name = value.strip_prefix('$')?;
    let name = name
        .strip_prefix('{')
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or(name);
    Some(match name {
        "ZUUL_PROJECT" => "SEAKEEPER_PROJECT",
        "ZUUL_PIPELINE" => "SEAKEEPER_PIPELINE",
        "ZUUL_CHANGE" => "SEAKEEPER_CHANGE",
        "ZUUL_PATCHSET" => "SEAKEEPER_PATCHSET",
        "ZUUL_COMMIT" | "ZUUL_NEWREV" => "SEAKEEPER_COMMIT",
        "ZUUL_UUID" => "SEAKEEPER_BUILD_ID",
        _ => return None,
    })
}

/// Reads a `docker run` line (`exec`, `sudo` and `time` before it are allowed).
pub fn docker_run(line: &str) -> Option<DockerRun> {
    let w = words(line)?;
    let mut i = 0;
    while i < w.len() && matches!(w[i].as_str(), "exec" | "sudo" | "time" | "command") {
        i += 1;
    }
    if w.get(i).map(String::as_str) != Some("docker")
        || w.get(i + 1).map(String::as_str) != Some("run")
    {
        return None;
    }
    i += 2;
    let mut run = DockerRun::default();
    while i < w.len() {
        let word = &w[i];
        if !word.starts_with('-') {
            run.image = word.clone();
            run.args = w[i + 1..].to_vec();
            return Some(run);
        }
        let (opt, inline) = match word.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_owned(), Some(v.to_owned())),
            _ => (word.clone(), None),
        };
        let value = if FLAGS.contains(&opt.as_str()) {
            None
        } else if inline.is_some() {
            inline
        } else {
            i += 1;
            Some(w.get(i)?.clone())
        };
        if let Some(v) = value {
            match opt.as_str() {
                "-e" | "--env" => match v.split_once('=') {
                    // A value the host's shell expanded came from Jenkins or Zuul.
                    Some((k, val)) if !val.contains('$') => {
                        run.env.push((k.to_owned(), val.to_owned()))
                    }
                    Some((k, val)) => match zuul_variable(val) {
                        Some(ours) => run.from_seakeeper.push((k.to_owned(), ours.to_owned())),
                        None => run.host_env.push(k.to_owned()),
                    },
                    None => run.host_env.push(v),
                },
                "-v" | "--volume" | "--mount" => run.volumes.push(v),
                "--entrypoint" => run.entrypoint = Some(v),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Stands for the image's entrypoint in a command, until the mapping puts in the command
/// `--entrypoint` names.
pub const ENTRYPOINT: &str = "\u{1}entrypoint\u{1}";

/// Whether a script runs `docker run`.
pub fn has_docker_run(script: &str) -> bool {
    script
        .replace("\\\n", " ")
        .lines()
        .any(|l| docker_run(l).is_some())
}

/// Carries a `shell` builder's script into `job`.
pub fn shell_builder(job: &mut Job, script: &str) {
    let joined = script.replace("\\\n", " ");
    let runs: Vec<(usize, DockerRun)> = joined
        .lines()
        .enumerate()
        .filter_map(|(i, l)| docker_run(l).map(|r| (i, r)))
        .collect();
    if runs.is_empty() {
        job.commands.push(script.trim_end().to_owned());
        return;
    }
    let host_lines: Vec<&str> = joined
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            let t = l.trim();
            !runs.iter().any(|(r, _)| r == i)
                && !t.is_empty()
                && !t.starts_with('#')
                && !t.starts_with("set -")
        })
        .map(|(_, l)| l.trim())
        .collect();
    if !host_lines.is_empty() {
        job.notes.push((
            Fidelity::Approximate,
            format!(
                "{} line(s) of a shell builder ran on the Jenkins host around `docker run` and are left out (first: `{}`)",
                host_lines.len(),
                host_lines[0]
            ),
        ));
    }
    for (_, run) in runs {
        match &job.image {
            None => job.image = Some(run.image.clone()),
            Some(first) if *first != run.image => job.notes.push((
                Fidelity::Approximate,
                format!("a later `docker run` used `{}`; every command runs in the first image `{first}`", run.image),
            )),
            Some(_) => {}
        }
        for (k, v) in &run.env {
            job.env.insert(k.clone(), v.clone());
        }
        for k in &run.host_env {
            job.notes.push((
                Fidelity::Approximate,
                format!(
                    "`-e {k}` passed the Jenkins host's value; seakeeper sets no such variable"
                ),
            ));
        }
        if !run.volumes.is_empty() {
            job.notes.push((
                Fidelity::Approximate,
                format!("host volumes ({}) have no counterpart: the job's workspace is the checked-out source", run.volumes.join(", ")),
            ));
        }
        let mut command: Vec<String> = run.entrypoint.iter().cloned().collect();
        command.extend(run.args.iter().cloned());
        // Zuul's variables, set from seakeeper's for the command.
        let prefix: String = run
            .from_seakeeper
            .iter()
            .map(|(k, ours)| format!("{k}=\"${ours}\" "))
            .collect();
        let words = command
            .iter()
            .map(|w| quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        if command.first().is_none_or(|w| w.starts_with('-')) {
            // No command, or options: what ran was the image's entrypoint.
            job.commands.push(format!(
                "{prefix}{ENTRYPOINT}{}{words}",
                if words.is_empty() { "" } else { " " }
            ));
            job.notes.push((
                Fidelity::Approximate,
                format!("`docker run {}` ran the image's entrypoint; seakeeper runs commands, so the entrypoint command stands for it", run.image),
            ));
        } else {
            job.commands.push(prefix + &words);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_run() {
        let r = docker_run("exec docker run --rm -t -e ZUUL_URL=https://x --env=A=b -e HOME --volume \"$(pwd)\"/log:/log --entrypoint=/bin/sh docker-registry.wikimedia.org/releng/tox:0.4.0 -c 'tox -e py3'").unwrap();
        assert_eq!(r.image, "docker-registry.wikimedia.org/releng/tox:0.4.0");
        assert_eq!(
            r.env,
            vec![
                ("ZUUL_URL".into(), "https://x".into()),
                ("A".into(), "b".into())
            ]
        );
        assert_eq!(r.host_env, vec!["HOME".to_owned()]);
        assert_eq!(r.entrypoint.as_deref(), Some("/bin/sh"));
        assert_eq!(r.args, vec!["-c".to_owned(), "tox -e py3".to_owned()]);
        assert!(docker_run("echo docker run x").is_none());
        assert!(docker_run("docker run --rm").is_none());
    }

    #[test]
    fn quotes_what_needs_it() {
        assert_eq!(quote("tox"), "tox");
        assert_eq!(quote("tox -e py3"), "'tox -e py3'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
