//! No key is accepted without effect (issue 14, item 12): every field the config schemas
//! accept must be read by code other than its own definition and the CLI's display of it. A
//! field added to a schema and a struct but used by nothing fails here (as
//! `project_concurrency` and `priorities` of policies/limits.yaml did).

use std::collections::BTreeSet;
use std::path::Path;

fn names(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(o) => {
            if let Some(serde_json::Value::Object(props)) = o.get("properties") {
                for (k, x) in props {
                    out.insert(k.clone());
                    names(x, out);
                }
            }
            for (k, x) in o {
                if k != "properties" {
                    names(x, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| names(x, out)),
        _ => {}
    }
}

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
}

/// Fields accepted ahead of the code that reads them, each with why and until when. Keep this
/// short: every entry is a key a user can set to no effect.
const NOT_YET_READ: &[(&str, &str)] = &[];

#[test]
fn every_config_field_is_read_by_something() {
    let mut fields = BTreeSet::new();
    let mut schemas = 0;
    for e in std::fs::read_dir("state-schema/config/v1")
        .unwrap()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "json") {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            names(&v, &mut fields);
            schemas += 1;
        }
    }
    assert!(
        schemas >= 10 && fields.len() > 40,
        "{schemas} schemas, {fields:?}"
    );
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    // Where fields are only declared or displayed does not count as reading them.
    let readers: Vec<&(String, String)> = files
        .iter()
        .filter(|(p, _)| {
            !p.ends_with("config/files.rs")
                && !p.ends_with("config/policies.rs")
                && !p.contains("/cli/")
        })
        .collect();
    // Keys whose Rust field has another name.
    fn renamed(f: &str) -> &str {
        match f {
            "use" => "template",
            // `policies/images.yaml`'s list, read through `ImagesPolicy::marked_unpinned`.
            "unpinned" => "marked_unpinned",
            other => other,
        }
    }
    let unread: Vec<&String> = fields
        .iter()
        .filter(|f| !NOT_YET_READ.iter().any(|(n, _)| n == f))
        .filter(|f| {
            let needle = format!(".{}", renamed(f));
            !readers.iter().any(|(_, text)| {
                text.match_indices(&needle).any(|(i, _)| {
                    let after = text[i + needle.len()..].chars().next();
                    !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .collect();
    assert!(
        unread.is_empty(),
        "config fields nothing reads (read them, or refuse them in the loader): {unread:?}"
    );
}
