//! Protocol v2 `ls-refs` answered in-process, as Gerrit's JGit does, instead of forking
//! `git http-backend` and `git upload-pack` for every request. Used only where the stand-in
//! must not be the bottleneck (the poll benchmark); a test checks that its answers are
//! byte-identical to `git http-backend`'s for the same requests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

fn pkt(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(format!("{:04x}", line.len() + 4).as_bytes());
    out.extend_from_slice(line.as_bytes());
}

/// The parsed request, if it is an `ls-refs` command.
pub struct Request {
    pub peel: bool,
    pub symrefs: bool,
    pub unborn: bool,
    pub prefixes: Vec<String>,
}

pub fn parse(body: &[u8]) -> Option<Request> {
    let mut i = 0;
    let mut command = None;
    let mut req = Request {
        peel: false,
        symrefs: false,
        unborn: false,
        prefixes: Vec::new(),
    };
    let mut in_args = false;
    while i + 4 <= body.len() {
        let len = usize::from_str_radix(std::str::from_utf8(&body[i..i + 4]).ok()?, 16).ok()?;
        if len == 0 {
            break;
        }
        if len == 1 {
            in_args = true;
            i += 4;
            continue;
        }
        if len < 4 || i + len > body.len() {
            return None;
        }
        let line = std::str::from_utf8(&body[i + 4..i + len]).ok()?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        if !in_args {
            if let Some(c) = line.strip_prefix("command=") {
                command = Some(c.to_owned());
            }
        } else {
            match line {
                "peel" => req.peel = true,
                "symrefs" => req.symrefs = true,
                "unborn" => req.unborn = true,
                l => {
                    if let Some(p) = l.strip_prefix("ref-prefix ") {
                        req.prefixes.push(p.to_owned());
                    }
                }
            }
        }
        i += len;
    }
    (command.as_deref() == Some("ls-refs")).then_some(req)
}

/// Open repositories, by path.
#[derive(Default)]
pub struct Repos(Mutex<HashMap<std::path::PathBuf, gix::ThreadSafeRepository>>);

impl Repos {
    fn open(&self, path: &Path) -> Option<gix::Repository> {
        let mut map = self.0.lock().unwrap();
        if let Some(r) = map.get(path) {
            return Some(r.to_thread_local());
        }
        let r = gix::open_opts(path, gix::open::Options::isolated()).ok()?;
        let sync = r.into_sync();
        let local = sync.to_thread_local();
        map.insert(path.to_owned(), sync);
        Some(local)
    }

    /// The `ls-refs` answer (pkt-lines ending in a flush), as `git upload-pack` writes it.
    pub fn answer(&self, repo_path: &Path, req: &Request) -> Option<Vec<u8>> {
        let repo = self.open(repo_path)?;
        let wanted = |name: &str| {
            req.prefixes.is_empty() || req.prefixes.iter().any(|p| name.starts_with(p.as_str()))
        };
        let mut out = Vec::new();
        // HEAD first, as upload-pack sends it.
        if wanted("HEAD") {
            let head = repo.find_reference("HEAD").ok();
            let target = head
                .as_ref()
                .and_then(|h| h.target().try_name().map(|n| n.as_bstr().to_string()));
            match repo.head_id().ok() {
                Some(id) => {
                    let mut line = format!("{} HEAD", id);
                    if let Some(t) = target.as_ref().filter(|_| req.symrefs) {
                        line.push_str(&format!(" symref-target:{t}"));
                    }
                    line.push('\n');
                    pkt(&mut out, &line);
                }
                None if req.unborn => {
                    if let Some(t) = &target {
                        pkt(&mut out, &format!("unborn HEAD symref-target:{t}\n"));
                    }
                }
                None => {}
            }
        }
        let platform = repo.references().ok()?;
        let mut refs: Vec<(String, gix::ObjectId)> = Vec::new();
        let mut push = |r: gix::Reference<'_>| {
            let name = r.name().as_bstr().to_string();
            if let Some(id) = r.target().try_id().filter(|_| wanted(&name)) {
                refs.push((name, id.to_owned()));
            }
        };
        if req.prefixes.is_empty() {
            for r in platform.all().ok()? {
                push(r.ok()?);
            }
        } else {
            // ref-prefix is a plain string prefix; list each prefix's directory.
            for p in &req.prefixes {
                let dir = match p.rfind('/') {
                    Some(i) => &p[..i],
                    None => continue,
                };
                if dir.is_empty() {
                    continue;
                }
                for r in platform.prefixed(dir).ok()? {
                    push(r.ok()?);
                }
            }
            refs.sort_by(|a, b| a.0.cmp(&b.0));
            refs.dedup_by(|a, b| a.0 == b.0);
        }
        for (name, id) in refs {
            let mut line = format!("{id} {name}");
            let tag = req
                .peel
                .then(|| repo.find_object(id).ok())
                .flatten()
                .filter(|o| o.kind == gix::object::Kind::Tag);
            if let Some(peeled) = tag.and_then(|o| o.peel_tags_to_end().ok()) {
                line.push_str(&format!(" peeled:{}", peeled.id));
            }
            line.push('\n');
            pkt(&mut out, &line);
        }
        out.extend_from_slice(b"0000");
        Some(out)
    }
}
