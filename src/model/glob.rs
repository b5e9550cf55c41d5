//! The one glob matcher of the program. Project and branch globs ([`Mode::Names`]): `*`
//! matches any run of characters, `/` included. Output paths ([`Mode::Paths`], `/`-separated
//! and relative): `*` matches within one segment, a `**` segment any number of segments, `?`
//! one character. Matching is linear in practice (no backtracking blow-up on many stars).

/// How `*` treats `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Names: `*` crosses `/`; nothing else is special.
    Names,
    /// Paths: `*` and `?` stay within a segment; `**` spans segments.
    Paths,
}

/// Whether `text` matches `glob`.
pub fn matches(glob: &str, text: &str, mode: Mode) -> bool {
    match mode {
        Mode::Names => wildcard(glob.as_bytes(), text.as_bytes(), false),
        Mode::Paths => {
            let g: Vec<&str> = glob.trim_start_matches("./").split('/').collect();
            let p: Vec<&str> = text.split('/').collect();
            segments(&g, &p)
        }
    }
}

/// `**` segments over path segments (the same two-pointer walk as [`wildcard`]).
fn segments(g: &[&str], p: &[&str]) -> bool {
    let (mut gi, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while pi < p.len() {
        if gi < g.len() && g[gi] == "**" {
            star = Some((gi, pi));
            gi += 1;
        } else if gi < g.len() && wildcard(g[gi].as_bytes(), p[pi].as_bytes(), true) {
            gi += 1;
            pi += 1;
        } else if let Some((sg, sp)) = star {
            gi = sg + 1;
            pi = sp + 1;
            star = Some((sg, sp + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|s| *s == "**")
}

/// `*` (any run) and, with `question`, `?` (one byte) over bytes: the classic two-pointer
/// match that remembers only the last star.
fn wildcard(g: &[u8], s: &[u8], question: bool) -> bool {
    let (mut gi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match g.get(gi) {
            Some(b'*') => {
                star = Some((gi, si));
                gi += 1;
            }
            Some(b'?') if question => {
                gi += 1;
                si += 1;
            }
            Some(c) if *c == s[si] => {
                gi += 1;
                si += 1;
            }
            _ => match star {
                Some((sg, ss)) => {
                    gi = sg + 1;
                    si = ss + 1;
                    star = Some((sg, ss + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        for (g, t, m) in [
            ("mediawiki/*", "mediawiki/extensions/Cite", true),
            ("mediawiki/*", "operations/puppet", false),
            ("*", "", true),
            ("main", "main", true),
            ("main", "mainline", false),
            ("release-*", "release-1.42", true),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
            ("a?", "a?", true),
            ("a?", "ab", false),
        ] {
            assert_eq!(matches(g, t, Mode::Names), m, "{g} {t}");
        }
        for (g, t, m) in [
            ("dist/*.tar.gz", "dist/a.tar.gz", true),
            ("dist/*.tar.gz", "dist/x/a.tar.gz", false),
            ("**/*.whl", "a/b/c.whl", true),
            ("**/*.whl", "c.whl", true),
            ("out/**", "out/a/b", true),
            ("./out/?.txt", "out/a.txt", true),
            ("out/?.txt", "out/ab.txt", false),
            ("a/**/b/**/c", "a/x/b/y/z/c", true),
            ("a/**/b", "a/c", false),
        ] {
            assert_eq!(matches(g, t, Mode::Paths), m, "{g} {t}");
        }
        // Many stars stay fast.
        let long = "a".repeat(2000);
        assert!(!matches(
            &format!("{}b", "*a".repeat(50)),
            &long,
            Mode::Names
        ));
    }
}
