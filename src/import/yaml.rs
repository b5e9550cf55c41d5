//! Reading the YAML of Zuul layouts and Jenkins Job Builder files as they are written in the
//! wild: anchors and aliases, merge keys (`<<` and `!!merge <<`), and local tags such as
//! JJB's `!include-raw:` (kept as tagged values for the JJB reader, which knows the file they
//! name is relative to). Every error names the file and, where the parser or a search of the
//! text can tell, the line.

use std::path::Path;

use yaml_serde::{Mapping, Value};

use super::ImportError;

/// The largest input file read (a whole Zuul layout of thousands of projects fits).
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// One parsed input file.
#[derive(Debug, Clone)]
pub struct Doc {
    /// How errors name it (the path as given).
    pub file: String,
    /// Its text, to find lines in.
    pub text: String,
    /// Its value, merge keys applied.
    pub value: Value,
}

impl Doc {
    /// An error about this file at the first line holding `needle` (or no line).
    pub fn error(&self, needle: &str, message: impl Into<String>) -> ImportError {
        ImportError::Input {
            file: self.file.clone(),
            line: crate::config::locate(&self.text, needle).map(|(l, _)| l),
            message: message.into(),
        }
    }
}

/// Reads a text file, refusing one over [`MAX_INPUT_BYTES`].
pub fn read_text(path: &Path) -> Result<String, ImportError> {
    let io = |e: std::io::Error| ImportError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_INPUT_BYTES {
        return Err(ImportError::Input {
            file: path.display().to_string(),
            line: None,
            message: format!("is {size} bytes, over the limit of {MAX_INPUT_BYTES}"),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|e| ImportError::Input {
        file: path.display().to_string(),
        line: None,
        message: format!("is not UTF-8 text: {e}"),
    })
}

/// Reads and parses a YAML file.
pub fn load(path: &Path) -> Result<Doc, ImportError> {
    let text = read_text(path)?;
    parse(&path.display().to_string(), text)
}

/// Parses YAML text; `file` names it in errors.
pub fn parse(file: &str, text: String) -> Result<Doc, ImportError> {
    let mut value: Value = yaml_serde::from_str(&text).map_err(|e| ImportError::Input {
        file: file.to_owned(),
        line: e.location().map(|l| l.line()),
        message: {
            let m = e.to_string();
            m.find(" at line ").map_or(m.clone(), |i| m[..i].to_owned())
        },
    })?;
    merge_keys(&mut value, 0).map_err(|message| ImportError::Input {
        file: file.to_owned(),
        line: crate::config::locate(&text, "<<").map(|(l, _)| l),
        message,
    })?;
    Ok(Doc {
        file: file.to_owned(),
        text,
        value,
    })
}

/// Whether a mapping key is a merge key: `<<`, or `<<` tagged `!!merge`.
fn is_merge_key(k: &Value) -> bool {
    match k {
        Value::String(s) => s == "<<",
        Value::Tagged(t) => t.tag.to_string().ends_with("merge"),
        _ => false,
    }
}

/// Applies merge keys everywhere, innermost first, so that a merged mapping that itself
/// merges another brings all of it (YAML's merge type: keys already present win, and of
/// several merged mappings the first that has a key gives it).
fn merge_keys(v: &mut Value, depth: usize) -> Result<(), String> {
    if depth > 256 {
        return Err("nests deeper than 256 levels".into());
    }
    match v {
        Value::Mapping(m) => {
            for (_, child) in m.iter_mut() {
                merge_keys(child, depth + 1)?;
            }
            let merges: Vec<Value> = m
                .keys()
                .filter(|k| is_merge_key(k))
                .cloned()
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|k| m.remove(&k))
                .collect();
            for source in merges {
                let sources = match source {
                    Value::Mapping(s) => vec![s],
                    Value::Sequence(seq) => seq
                        .into_iter()
                        .map(|s| match s {
                            Value::Mapping(s) => Ok(s),
                            _ => Err("a merge key's list holds only mappings".to_owned()),
                        })
                        .collect::<Result<Vec<Mapping>, String>>()?,
                    _ => return Err("a merge key (`<<`) takes a mapping or a list of them".into()),
                };
                for s in sources {
                    for (k, val) in s {
                        if !m.contains_key(&k) {
                            m.insert(k, val);
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Sequence(s) => s.iter_mut().try_for_each(|c| merge_keys(c, depth + 1)),
        Value::Tagged(t) => merge_keys(&mut t.value, depth + 1),
        _ => Ok(()),
    }
}

/// A scalar as text (strings, numbers and booleans as YAML writes them).
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `m[key]` as text.
pub fn str_of(m: &Mapping, key: &str) -> Option<String> {
    m.get(key).and_then(scalar)
}

/// `m[key]` as a list of text (one scalar counts as a list of one).
pub fn strs_of(m: &Mapping, key: &str) -> Vec<String> {
    match m.get(key) {
        Some(Value::Sequence(s)) => s.iter().filter_map(scalar).collect(),
        Some(v) => scalar(v).into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_plain_and_tagged_and_nested() {
        let text = "base: &base\n  a: 1\n  b: 2\nmid: &mid\n  <<: *base\n  b: 3\n  c: 4\n\
                    top:\n  !!merge <<: *mid\n  d: 5\nmany:\n  <<: [*mid, {e: 6}]\n  a: 0\n";
        let d = parse("t.yaml", text.into()).unwrap();
        let v = &d.value;
        assert_eq!(v["mid"]["a"], Value::from(1));
        assert_eq!(v["mid"]["b"], Value::from(3));
        assert_eq!(v["top"]["a"], Value::from(1));
        assert_eq!(v["top"]["b"], Value::from(3));
        assert_eq!(v["top"]["d"], Value::from(5));
        assert_eq!(v["many"]["a"], Value::from(0));
        assert_eq!(v["many"]["e"], Value::from(6));
        assert!(v["top"].as_mapping().unwrap().get("<<").is_none());
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("bad.yaml", "a: 1\nb: [\n".into()).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("bad.yaml:"), "{s}");
        let e = parse("m.yaml", "a:\n  x: 1\n  <<: 3\n".into()).unwrap_err();
        assert!(e.to_string().starts_with("m.yaml:3: "), "{e}");
    }

    #[test]
    fn include_tags_are_kept() {
        let d = parse("j.yaml", "- shell: !include-raw: a.sh\n".into()).unwrap();
        let Value::Tagged(t) = &d.value[0]["shell"] else {
            panic!("{:?}", d.value)
        };
        assert_eq!(t.tag.to_string(), "!include-raw:");
    }
}
