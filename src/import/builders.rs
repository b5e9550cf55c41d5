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
                        '$' => {
                            cur.push(EXPANDS);
                            cur.push('$');
                        }
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
            '$' => {
                started = true;
                cur.push(EXPANDS);
                cur.push('$');
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

/// Marks, in a word [`words`] read, a `$` the shell expanded (outside single quotes): the
/// command keeps it expanding; where a plain value is needed it is taken out ([`plain`]).
const EXPANDS: char = '\u{2}';

/// A word without its [`EXPANDS`] marks.
fn plain(w: &str) -> String {
    w.replace(EXPANDS, "")
}

/// Splits a command line at its first unquoted shell operator: the command before it, and the
/// operator (`|`, `||`, `&&`, `;`, `&`, or `>` for any redirection such as `2>&1` or `> log`)
/// with the rest of the line.
fn split_command(line: &str) -> (&str, Option<(&'static str, &str)>) {
    let b = line.as_bytes();
    let (mut single, mut double, mut i) = (false, false, 0);
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' if !single => i += 1,
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'|' | b';' | b'&' | b'<' | b'>' if !single && !double => {
                let next = b.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    (b'|', Some(b'|')) => ("||", 2),
                    (b'&', Some(b'&')) => ("&&", 2),
                    (b'|', _) => ("|", 1),
                    (b';', _) => (";", 1),
                    (b'&', _) => ("&", 1),
                    _ => (">", 0),
                };
                // A redirection's file descriptor (`2>`) belongs to it.
                let mut start = i;
                if op == ">" {
                    while start > 0 && b[start - 1].is_ascii_digit() {
                        start -= 1;
                    }
                    if start > 0 && !b[start - 1].is_ascii_whitespace() {
                        start = i;
                    }
                }
                return (line[..start].trim_end(), Some((op, &line[start + len..])));
            }
            _ => {}
        }
        i += 1;
    }
    (line, None)
}

/// A script's simple commands, each with what was left out of its line after it (an operator
/// whose meaning a job's command list cannot keep), as (command, note).
fn commands(script: &str) -> Vec<(String, Option<String>)> {
    let joined = script.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let mut rest = line;
        loop {
            let (cmd, next) = split_command(rest);
            match next {
                None => {
                    out.push((cmd.to_owned(), None));
                    break;
                }
                Some((";" | "&&", tail)) => {
                    out.push((cmd.to_owned(), None));
                    rest = tail;
                }
                Some(("||", tail)) => {
                    out.push((cmd.to_owned(), Some(format!("`|| {}`: Jenkins tolerated the command's failure; here it fails the job", tail.trim()))));
                    break;
                }
                Some((op, tail)) => {
                    let what = if op == ">" {
                        "a redirection"
                    } else {
                        "a pipe or background"
                    };
                    out.push((cmd.to_owned(), Some(format!("`{}` ({what}) ran on the Jenkins host with the command's output and is left out", format!("{op}{tail}").trim()))));
                    break;
                }
            }
        }
    }
    out
}

/// A word quoted for a shell, when it needs to be: in double quotes when a `$` in it expanded
/// (so it still does), else in single quotes.
fn quote(w: &str) -> String {
    if w.contains(EXPANDS) {
        let mut out = String::from('"');
        let mut expands = false;
        for c in w.chars() {
            match c {
                EXPANDS => expands = true,
                '$' if expands => {
                    out.push('$');
                    expands = false;
                }
                '"' | '\\' | '`' | '$' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out.push('"');
        return out;
    }
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
            run.image = plain(word);
            run.args = w[i + 1..].to_vec();
            return Some(run);
        }
        let word = &plain(word);
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
            Some(plain(w.get(i)?))
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
    commands(script)
        .iter()
        .any(|(l, _)| docker_run(l).is_some())
}

/// Carries a `shell` builder's script into `job`.
pub fn shell_builder(job: &mut Job, script: &str) {
    let segments = commands(script);
    let runs: Vec<(usize, DockerRun)> = segments
        .iter()
        .enumerate()
        .filter_map(|(i, (l, _))| docker_run(l).map(|r| (i, r)))
        .collect();
    if runs.is_empty() {
        job.commands.push(script.trim_end().to_owned());
        return;
    }
    for (i, _) in &runs {
        if let Some(note) = &segments[*i].1 {
            job.notes.push((Fidelity::Approximate, note.clone()));
        }
    }
    let host_lines: Vec<&str> = segments
        .iter()
        .map(|(l, _)| l.as_str())
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
        // Zuul's variables in the arguments become seakeeper's; any other the host's shell
        // expanded is noted (seakeeper does not set it).
        for w in &command {
            for (at, _) in w.match_indices(EXPANDS) {
                let rest = &w[at + EXPANDS.len_utf8()..];
                let name: String = rest
                    .trim_start_matches('$')
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.is_empty() || name.starts_with("SEAKEEPER_") {
                    continue;
                }
                if zuul_variable(&format!("${name}")).is_none()
                    && !["HOME", "PWD"].contains(&name.as_str())
                {
                    job.notes.push((
                        Fidelity::Approximate,
                        format!("`${name}` was expanded on the Jenkins host; seakeeper sets no such variable"),
                    ));
                }
            }
        }
        let words = command
            .iter()
            .map(|w| {
                let mut q = quote(w);
                for zuul in [
                    "ZUUL_PROJECT",
                    "ZUUL_PIPELINE",
                    "ZUUL_CHANGE",
                    "ZUUL_PATCHSET",
                    "ZUUL_COMMIT",
                    "ZUUL_NEWREV",
                    "ZUUL_UUID",
                ] {
                    if let Some(ours) = zuul_variable(&format!("${zuul}")) {
                        q = q.replace(&format!("${{{zuul}}}"), &format!("${{{ours}}}"));
                        q = q.replace(&format!("${zuul}"), &format!("${ours}"));
                    }
                }
                q
            })
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

    fn job() -> Job {
        Job {
            name: "j".into(),
            file: "jjb/j.yaml".into(),
            line: None,
            image: None,
            commands: vec![],
            env: Default::default(),
            timeout_minutes: None,
            notes: vec![],
        }
    }

    #[test]
    fn shell_operators_end_the_containers_command_and_are_noted() {
        let mut j = job();
        shell_builder(
            &mut j,
            "docker run --rm r.example.org/npm-test:1.0 2>&1 | tee log/npm.log\n\
             docker run --rm r.example.org/tox:0.4.0 -e lint || echo 'lint failed but ok'\n\
             docker run --rm r.example.org/tox:0.4.0 -e py3; docker run --rm r.example.org/tox:0.4.0 -e pep8\n",
        );
        assert_eq!(
            j.commands,
            vec![
                format!("{ENTRYPOINT}"),
                format!("{ENTRYPOINT} -e lint"),
                format!("{ENTRYPOINT} -e py3"),
                format!("{ENTRYPOINT} -e pep8"),
            ]
        );
        let notes: Vec<&str> = j.notes.iter().map(|n| n.1.as_str()).collect();
        assert!(
            notes.iter().any(|n| n.contains("tee log/npm.log")),
            "{notes:?}"
        );
        assert!(notes.iter().any(|n| n.contains("tolerated")), "{notes:?}");
    }

    #[test]
    fn variables_the_host_expanded_still_expand() {
        let mut j = job();
        shell_builder(
            &mut j,
            "docker run --rm r.example.org/ci:1 --branch \"$ZUUL_BRANCH\" --project $ZUUL_PROJECT --out $WORKSPACE/log --lit '$NOT'\n",
        );
        assert_eq!(
            j.commands,
            vec![format!(
                "{ENTRYPOINT} --branch \"$ZUUL_BRANCH\" --project \"$SEAKEEPER_PROJECT\" --out \"$WORKSPACE/log\" --lit '$NOT'"
            )]
        );
        let notes: Vec<&str> = j.notes.iter().map(|n| n.1.as_str()).collect();
        assert!(
            notes.iter().any(|n| n.contains("`$WORKSPACE`")),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("`$ZUUL_BRANCH`")),
            "{notes:?}"
        );
    }

    #[test]
    fn quotes_what_needs_it() {
        assert_eq!(quote("tox"), "tox");
        assert_eq!(quote("tox -e py3"), "'tox -e py3'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
