//! Configuration errors as data: each names the file, line, column and field path, says what
//! was expected, and suggests the closest valid key or name for a typo. Errors are collected,
//! never thrown one at a time, so that `config check` reports every problem in one run.

use std::fmt;

use serde::Serialize;

/// One problem in one file of the config repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// The file, relative to the repository root.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The field path, e.g. `environments[1].registry` (empty for the whole file).
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// The closest valid key or name, for typos.
    pub suggestion: Option<String>,
}

impl ConfigError {
    /// An error about a whole file or a field, without a known position.
    pub fn new(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: file.into(),
            line: None,
            column: None,
            field: field.into(),
            message: message.into(),
            suggestion: None,
        }
    }

    /// Sets the position.
    pub fn at(mut self, line: usize, column: usize) -> ConfigError {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// Points at the first place `needle` appears in `text`; for errors found after parsing,
    /// such as references to unknown names.
    pub fn located(mut self, text: &str, needle: &str) -> ConfigError {
        if let Some((line, column)) = locate(text, needle) {
            self.line = Some(line);
            self.column = Some(column);
        }
        self
    }

    /// Suggests the candidate closest to `wrong`, if one is close enough to be a typo.
    pub fn suggest<'a>(
        mut self,
        wrong: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> ConfigError {
        self.suggestion = closest(wrong, candidates).map(str::to_owned);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean `{s}`?)")?;
        }
        Ok(())
    }
}

/// The 1-based (line, column) of the first occurrence of `needle` in `text`.
pub fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with('#'))
        .find_map(|(i, line)| {
            line.find(needle)
                .map(|col| (i + 1, line[..col].chars().count() + 1))
        })
}

/// The 1-based (line, column) of a key path such as `jobs`, `unit`, `timout`: each key is
/// looked for as `key:` after the line where the one before it was found.
pub fn locate_path(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0;
    let mut found = None;
    for key in path {
        let needle = format!("{key}:");
        let (i, col) = lines
            .iter()
            .enumerate()
            .skip(from)
            .filter(|(_, l)| !l.trim_start().starts_with('#'))
            .find_map(|(i, l)| {
                l.find(&needle)
                    .filter(|c| {
                        // A whole key: at the start of the line's content, after `- `, or in a
                        // flow mapping.
                        let before = l[..*c].trim_end();
                        before.is_empty()
                            || before.ends_with('-')
                            || before.ends_with('{')
                            || before.ends_with(',')
                    })
                    .map(|c| (i, c))
            })?;
        found = Some((i + 1, lines[i][..col].chars().count() + 1));
        // The next key is on a later line, or on this one in a flow mapping.
        from = if lines[i].contains('{') { i } else { i + 1 };
    }
    found
}

/// Edit distance between two short strings, counting a swap of neighbours as one edit
/// (optimal string alignment), since that is the commonest typo.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `wrong`, if within a third of its length (at least 1, at most 3).
/// An abbreviation (`prod` for `production`) counts too, when only one candidate starts with it.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let limit = (wrong.chars().count() / 3).clamp(1, 3);
    let near = candidates
        .iter()
        .map(|c| (distance(wrong, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c);
    near.or_else(|| {
        let mut prefixed = candidates
            .iter()
            .filter(|c| wrong.chars().count() >= 3 && c.starts_with(wrong));
        match (prefixed.next(), prefixed.next()) {
            (Some(only), None) => Some(*only),
            _ => None,
        }
    })
}

/// The largest YAML file parsed.
pub const MAX_YAML_BYTES: usize = 1 << 20;
/// The deepest nesting of flow collections (`[`, `{`) or indentation levels.
pub const MAX_YAML_DEPTH: usize = 64;
/// The most aliases (`*name`) in one file: each may expand to a whole subtree.
pub const MAX_YAML_ALIASES: usize = 64;

/// Refuses YAML that is too large, too deep or has too many aliases, before any parser sees
/// it: config and pipeline files come from patchsets, and a parser's cost grows with depth and
/// alias expansion, not only size. The scan is a conservative over-approximation (it counts
/// brackets outside quotes and comments, and indentation), never a second YAML parser.
#[allow(clippy::result_large_err)]
pub fn check_yaml_limits(file: &str, text: &str) -> Result<(), ConfigError> {
    if text.len() > MAX_YAML_BYTES {
        return Err(ConfigError::new(
            file,
            "",
            format!(
                "is {} bytes, over the limit of {MAX_YAML_BYTES} for one YAML file",
                text.len()
            ),
        ));
    }
    let (mut depth, mut aliases) = (0usize, 0usize);
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        // Block nesting shows as indentation (at least one column per level).
        if indent > MAX_YAML_DEPTH * 8 {
            return Err(ConfigError::new(
                file,
                "",
                format!("nests deeper than the limit of {MAX_YAML_DEPTH} levels"),
            )
            .at(n + 1, indent + 1));
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (col, c) in line.char_indices() {
            match quote {
                Some('"') if c == '\\' && prev != '\\' => {}
                Some(q) if c == q && !(q == '"' && prev == '\\') => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if prev.is_whitespace() || col == 0 => break,
                    '"' | '\'' if prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':') => {
                        quote = Some(c)
                    }
                    '[' | '{' => {
                        depth += 1;
                        if depth > MAX_YAML_DEPTH {
                            return Err(ConfigError::new(
                                file,
                                "",
                                format!("nests deeper than the limit of {MAX_YAML_DEPTH} levels"),
                            )
                            .at(n + 1, col + 1));
                        }
                    }
                    ']' | '}' => depth = depth.saturating_sub(1),
                    '*' if (prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':'))
                        && line[col + 1..]
                            .chars()
                            .next()
                            .is_some_and(|n| n.is_alphanumeric() || n == '_') =>
                    {
                        aliases += 1;
                        if aliases > MAX_YAML_ALIASES {
                            return Err(ConfigError::new(
                                file,
                                "",
                                format!(
                                    "uses more than {MAX_YAML_ALIASES} aliases (each may expand to a \
                                     whole subtree)"
                                ),
                            )
                            .at(n + 1, col + 1));
                        }
                    }
                    _ => {}
                },
            }
            prev = if prev == '\\' && c == '\\' { ' ' } else { c };
        }
    }
    Ok(())
}

/// Parses YAML into `T`, turning serde's error into a [`ConfigError`] with the position, the
/// field path, and for unknown keys the closest expected key.
// Config errors are data that callers collect into lists; boxing each would only add noise.
#[allow(clippy::result_large_err)]
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, ConfigError> {
    check_yaml_limits(file, text)?;
    // A key given twice in one mapping is a mistake (the second would silently win); the
    // generic YAML value refuses it, with its position.
    if let Err(e) = yaml_serde::from_str::<yaml_serde::Value>(text)
        && e.to_string().contains("duplicate")
    {
        let raw = e.to_string();
        let message = raw
            .find(" at line ")
            .map_or(raw.clone(), |i| raw[..i].to_owned());
        let mut err = ConfigError::new(file, "", message);
        if let Some(loc) = e.location() {
            err = err.at(loc.line(), loc.column());
        }
        return Err(err);
    }
    let de = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let inner = e.into_inner();
        let location = inner.location();
        let raw = inner.to_string();
        // serde_yaml appends " at line L column C"; the position is reported on its own.
        let mut message = match raw.find(" at line ") {
            Some(i) => raw[..i].to_owned(),
            None => raw,
        };
        // serde_yaml also prefixes the path ("environments[0]: ..."); it is reported on its own.
        if let Some((head, rest)) = message.split_once(": ")
            && !head.is_empty()
            && !head.contains(' ')
        {
            message = rest.to_owned();
        }
        let mut err = ConfigError::new(file, field, message.clone());
        if let Some(loc) = location {
            err = err.at(loc.line(), loc.column());
        }
        if let Some((wrong, expected)) = unknown_key(&message) {
            // serde_path_to_error writes a map key it could not read as `?`.
            if let Some(parent) = err.field.strip_suffix('?') {
                err.field = format!("{parent}{wrong}");
            }
            err = err.suggest(&wrong, expected.iter().map(String::as_str));
        }
        err
    })
}

/// Pulls (wrong key, expected keys) out of serde's "unknown field `x`, expected one of `a`, `b`"
/// (or "unknown variant ...").
pub(crate) fn unknown_key(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let end = rest.find('`')?;
    let wrong = rest[..end].to_owned();
    let expected = rest[end..]
        .split('`')
        .skip(2)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((wrong, expected))
}

#[cfg(test)]
mod tests {
    #[test]
    fn issue_14_yaml_limits_refuse_before_parsing() {
        #[derive(serde::Deserialize, Debug)]
        struct Any {
            #[serde(rename = "a")]
            _a: yaml_serde::Value,
        }
        let deep = format!("a: {}1{}\n", "[".repeat(80_000), "]".repeat(80_000));
        let e = super::parse_yaml::<Any>("p.yaml", &deep).unwrap_err();
        // Refused by the scan (it names the limit and where it was passed), not by a parser.
        assert!(e.to_string().contains("nests deeper than the limit"), "{e}");
        assert!(e.to_string().starts_with("p.yaml:1:68:"), "{e}");
        let big = format!("a: \"{}\"\n", "x".repeat(super::MAX_YAML_BYTES));
        assert!(
            super::parse_yaml::<Any>("p.yaml", &big)
                .unwrap_err()
                .to_string()
                .contains("over the limit")
        );
        let mut bomb = String::from("a0: &a0 [x, x]\n");
        for i in 1..40 {
            bomb.push_str(&format!("a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
        }
        bomb.push_str("a: *a39\n");
        let e = super::parse_yaml::<Any>("p.yaml", &bomb).unwrap_err();
        assert!(e.to_string().contains("aliases"), "{e}");
        // Ordinary YAML with quotes, comments, globs and a few aliases passes.
        let fine =
            "a: &base {image: \"x[\", cmd: 'echo }'}  # [[[\nb: *base\nc: [ls *.txt, cp * out]\n";
        super::check_yaml_limits("p.yaml", fine).unwrap();
    }

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Env {
        name: String,
        registry: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        environments: Vec<Env>,
    }

    #[test]
    fn unknown_keys_name_line_column_path_and_suggestion() {
        let text = "environments:\n  - name: testing\n    registry: a\n  - name: staging\n    registyr: b\n";
        let err = parse_yaml::<File>("environments.yaml", text).unwrap_err();
        assert_eq!(err.file, "environments.yaml");
        assert_eq!(err.line, Some(5));
        assert_eq!(err.column, Some(5));
        assert_eq!(err.field, "environments[1].registyr");
        assert_eq!(err.suggestion.as_deref(), Some("registry"));
        assert_eq!(
            err.to_string(),
            "environments.yaml:5:5: environments[1].registyr: unknown field `registyr`, expected `name` or `registry` (did you mean `registry`?)"
        );
    }

    #[test]
    fn wrong_types_and_syntax_errors_have_positions() {
        let err = parse_yaml::<File>("e.yaml", "environments: 3\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.message.contains("invalid type"), "{err}");
        let err = parse_yaml::<File>("e.yaml", "environments: [\n").unwrap_err();
        assert!(err.line.is_some(), "{err}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse_yaml::<File>("e.yaml", "environments: []\nenvironments: []\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{err}");
        assert!(err.line.is_some(), "{err}");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(
            closest("stagin", ["staging", "production"]),
            Some("staging")
        );
        assert_eq!(closest("qa", ["staging", "production"]), None);
        assert_eq!(
            closest("prod", ["staging", "production"]),
            Some("production")
        );
        assert_eq!(closest("pr", ["production"]), None);
        assert_eq!(closest("lnit", ["lint", "unit"]), Some("lint"));
    }
}
