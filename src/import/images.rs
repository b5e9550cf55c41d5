//! Pins image tags to digests by asking their registries (a manifest GET through seakeeper's
//! registry client), all at once, under one deadline. A tag whose registry does not answer in
//! time, or answers with an error, stays a tag: the caller marks it unpinned, and the report
//! lists it with the reason given here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Whether and how long to ask registries.
#[derive(Debug, Clone, Copy)]
pub enum Resolve {
    /// Ask nobody: every tag stays a tag.
    Offline,
    /// Ask each registry, all within this long.
    Online(Duration),
}

/// Whether a reference is pinned by digest.
pub fn is_pinned(image: &str) -> bool {
    image
        .rsplit_once("@sha256:")
        .is_some_and(|(_, hex)| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A reference's (registry URL, repository, tag), Docker's defaults filled in.
pub fn parse_reference(image: &str) -> Option<(String, String, String)> {
    let (name, tag) = match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (image, "latest"),
    };
    let (host, repo) = match name.split_once('/') {
        Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => {
            (h.to_owned(), r.to_owned())
        }
        Some(_) => ("registry-1.docker.io".to_owned(), name.to_owned()),
        None => ("registry-1.docker.io".to_owned(), format!("library/{name}")),
    };
    if repo.is_empty() || tag.is_empty() || host.is_empty() {
        return None;
    }
    let bare = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    let scheme = if bare == "localhost" || bare.starts_with("127.") || bare == "[::1]" {
        "http"
    } else {
        "https"
    };
    Some((format!("{scheme}://{host}"), repo, tag.to_owned()))
}

/// Resolves every image: `Ok(name:tag@sha256:...)`, or `Err(why it stays a tag)`. Pinned
/// references are returned as they are.
pub fn resolve(
    images: &BTreeSet<String>,
    how: Resolve,
) -> BTreeMap<String, Result<String, String>> {
    let mut out = BTreeMap::new();
    let deadline = match how {
        Resolve::Offline => {
            for i in images {
                let r = if is_pinned(i) {
                    Ok(i.clone())
                } else {
                    Err("not looked up (--offline)".to_owned())
                };
                out.insert(i.clone(), r);
            }
            return out;
        }
        Resolve::Online(d) => d,
    };
    let (tx, rx) = mpsc::channel();
    let mut pending = 0;
    for image in images {
        if is_pinned(image) {
            out.insert(image.clone(), Ok(image.clone()));
            continue;
        }
        let Some((url, repo, tag)) = parse_reference(image) else {
            out.insert(image.clone(), Err("not an image reference".to_owned()));
            continue;
        };
        pending += 1;
        let (tx, image) = (tx.clone(), image.clone());
        // Each lookup runs on its own thread; one that outlives the deadline is left to end
        // on its own (its answer is no longer wanted).
        std::thread::spawn(move || {
            let answer = crate::registry::distribution::Registry::new(&url, None)
                .map(|r| r.with_retry(1, Duration::from_millis(100)))
                .and_then(|r| r.get_manifest(&repo, &tag))
                .map(|m| {
                    let base = image.split('@').next().unwrap_or(&image);
                    format!("{base}@{}", m.digest)
                })
                .map_err(|e| format!("{url} did not give a digest: {e}"));
            let _ = tx.send((image, answer));
        });
    }
    drop(tx);
    let end = Instant::now() + deadline;
    while pending > 0 {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((image, answer)) => {
                pending -= 1;
                out.insert(image, answer);
            }
            Err(_) => break,
        }
    }
    for i in images {
        out.entry(i.clone()).or_insert_with(|| {
            Err(format!(
                "no registry answered within {}s",
                deadline.as_secs()
            ))
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            parse_reference("docker-registry.wikimedia.org/releng/tox:0.4.0"),
            Some((
                "https://docker-registry.wikimedia.org".into(),
                "releng/tox".into(),
                "0.4.0".into()
            ))
        );
        assert_eq!(
            parse_reference("127.0.0.1:5000/ci/php"),
            Some((
                "http://127.0.0.1:5000".into(),
                "ci/php".into(),
                "latest".into()
            ))
        );
        assert_eq!(
            parse_reference("debian:bookworm"),
            Some((
                "https://registry-1.docker.io".into(),
                "library/debian".into(),
                "bookworm".into()
            ))
        );
    }

    #[test]
    fn an_unreachable_registry_leaves_the_tag_unpinned() {
        // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        let images: BTreeSet<String> = ["127.0.0.1:9/releng/tox:1.0".to_owned()].into();
        let r = resolve(&images, Resolve::Online(Duration::from_secs(5)));
        let why = r["127.0.0.1:9/releng/tox:1.0"].as_ref().unwrap_err();
        assert!(
            why.contains("did not give a digest") || why.contains("no registry answered"),
            "{why}"
        );
    }
}
