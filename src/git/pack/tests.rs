//! Packs written, merged and read back by git itself.

use super::super::testing::git;
use super::*;

#[test]
fn stored_and_deflated_streams_inflate_back() {
    use std::io::Read as _;
    for data in [
        Vec::new(),
        b"hello".to_vec(),
        vec![7u8; 70_000],
        (0..3000u32).map(|i| (i % 251) as u8).collect(),
    ] {
        for stream in [stored_zlib(&data), deflate(&data)] {
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(&stream[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
        }
    }
}

fn info(n: u32) -> PackInfo {
    PackInfo {
        pack: PathBuf::from(format!("{n}.pack")),
        idx: PathBuf::from(format!("{n}.idx")),
        objects: n,
    }
}

#[test]
fn geometric_merge_picks_the_small_tail() {
    let pick = |sizes: &[u32]| {
        let mut v: Vec<u32> = geometric_merge_set(sizes.iter().map(|&n| info(n)).collect())
            .iter()
            .map(|p| p.objects)
            .collect();
        v.sort();
        v
    };
    assert_eq!(pick(&[1000]), Vec::<u32>::new());
    assert_eq!(pick(&[1000, 10]), Vec::<u32>::new());
    assert_eq!(pick(&[1000, 10, 10]), vec![10, 10]);
    assert_eq!(pick(&[1000, 10, 15, 30]), vec![10, 15, 30]);
    assert_eq!(pick(&[40, 10, 15, 30]), vec![10, 15, 30, 40]);
}

/// Each object's type and content, by `git cat-file --batch`.
fn cat_all(dir: &Path, ids: &[&str]) -> Vec<(String, Vec<u8>)> {
    let out = git(
        dir,
        &["cat-file", "--batch"],
        Some(format!("{}\n", ids.join("\n")).as_bytes()),
    );
    let mut rest = &out[..];
    let mut objects = Vec::new();
    while !rest.is_empty() {
        let nl = rest.iter().position(|&b| b == b'\n').unwrap();
        let head = std::str::from_utf8(&rest[..nl]).unwrap().to_owned();
        let mut f = head.split(' ');
        let (_, kind, size) = (f.next(), f.next().unwrap(), f.next().unwrap());
        let size: usize = size.parse().unwrap();
        objects.push((kind.to_owned(), rest[nl + 1..nl + 1 + size].to_vec()));
        rest = &rest[nl + 2 + size..];
    }
    objects
}

/// Commits `rounds` changes to a deep directory of many files, each commit's new objects
/// written as one pack of ours (as the ledger writes a batch).
fn commit_as_packs(dir: &Path, rounds: std::ops::Range<usize>) -> Vec<PackInfo> {
    let mut written = Vec::new();
    let pack_dir = dir.join(".git/objects/pack");
    for round in rounds {
        let deep = dir.join("builds/2026/12/01/05");
        std::fs::create_dir_all(&deep).unwrap();
        if round == 0 {
            for i in 0..800 {
                std::fs::write(deep.join(format!("b{i:04}.yaml")), format!("{i}\n")).unwrap();
            }
        }
        std::fs::write(deep.join(format!("r{round:04}.yaml")), format!("{round}\n")).unwrap();
        std::fs::write(dir.join("HEAD-record"), format!("{round}\n")).unwrap();
        git(dir, &["add", "-A"], None);
        git(
            dir,
            &["commit", "-q", "-m", &format!("round {round}")],
            None,
        );
        let range = if round == 0 {
            "HEAD".to_owned()
        } else {
            "HEAD^..HEAD".to_owned()
        };
        let ids = git(dir, &["rev-list", "--objects", &range], None);
        let ids: Vec<&str> = std::str::from_utf8(&ids)
            .unwrap()
            .lines()
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let objects = cat_all(dir, &ids)
            .into_iter()
            .map(|(kind, data)| {
                let kind = match kind.as_str() {
                    "commit" => ObjectKind::Commit,
                    "tree" => ObjectKind::Tree,
                    _ => ObjectKind::Blob,
                };
                PackObject {
                    kind,
                    id: super::super::object_id(kind, &data),
                    data,
                }
            })
            .collect::<Vec<_>>();
        written.push(write_pack(&pack_dir, &objects).unwrap().unwrap());
        git(dir, &["prune-packed"], None);
    }
    written
}

fn merge_all(dir: &Path) -> (u64, u64) {
    merge(dir, None)
}

/// Merges `only` (all packs if `None`), checks the result with `git fsck`, and returns the
/// packs' total size before and after.
fn merge(dir: &Path, only: Option<&[PackInfo]>) -> (u64, u64) {
    let pack_dir = dir.join(".git/objects/pack");
    let size = || -> u64 {
        list_packs(&pack_dir)
            .unwrap()
            .iter()
            .map(|p| std::fs::metadata(&p.pack).unwrap().len())
            .sum()
    };
    let before = size();
    let packs = only.map_or_else(|| list_packs(&pack_dir).unwrap(), <[PackInfo]>::to_vec);
    let (_, replaced) = merge_packs(&pack_dir, &packs, true).unwrap().unwrap();
    assert_eq!(replaced.len(), packs.len());
    for p in &replaced {
        remove_pack(p).unwrap();
    }
    if only.is_none() {
        assert_eq!(list_packs(&pack_dir).unwrap().len(), 1);
    }
    git(dir, &["fsck", "--full", "--strict", "--no-dangling"], None);
    (before, size())
}

/// The longest delta chain in the repository's packs, by `git verify-pack`.
fn longest_chain(dir: &Path) -> usize {
    let mut longest = 0;
    for p in list_packs(&dir.join(".git/objects/pack")).unwrap() {
        let out = git(dir, &["verify-pack", "-v", p.idx.to_str().unwrap()], None);
        for line in String::from_utf8(out).unwrap().lines() {
            if let Some(rest) = line.strip_prefix("chain length = ") {
                longest = longest.max(rest.split(':').next().unwrap().parse().unwrap());
            }
        }
    }
    longest
}

#[test]
fn merging_packs_deltifies_tree_versions_and_git_reads_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    git(dir, &["init", "-q"], None);
    git(dir, &["config", "gc.auto", "0"], None);
    commit_as_packs(dir, 0..30);
    let (before, after) = merge_all(dir);
    assert!(after * 4 < before, "{before} -> {after} bytes");
    eprintln!("{before} -> {after} bytes");
    assert!(longest_chain(dir) >= 20, "{}", longest_chain(dir));
    // Merging again copies the deltas (their bases move) and adds the new versions' own,
    // up to git's depth limit.
    commit_as_packs(dir, 30..70);
    merge_all(dir);
    let longest = longest_chain(dir);
    assert!(
        (35..=super::super::delta::MAX_DEPTH as usize).contains(&longest),
        "{longest}"
    );
    // The newest packs merged first (their oldest tree has no base among them, and the
    // others build on it), then with the older ones: the tree that gets a base then carries
    // its chain with it, and the limit still holds.
    let packs = commit_as_packs(dir, 100..160);
    merge(dir, Some(&packs[30..]));
    assert!(longest_chain(dir) >= 25);
    merge(dir, Some(&packs[..15]));
    merge_all(dir);
    let longest = longest_chain(dir);
    assert!(
        longest <= super::super::delta::MAX_DEPTH as usize,
        "{longest}"
    );
    // The newest version of the directory is stored whole, its older versions as deltas.
    let newest = git(dir, &["rev-parse", "HEAD:builds/2026/12/01/05"], None);
    let older = git(dir, &["rev-parse", "HEAD~5:builds/2026/12/01/05"], None);
    let pack = list_packs(&dir.join(".git/objects/pack"))
        .unwrap()
        .remove(0);
    let listing = git(
        dir,
        &["verify-pack", "-v", pack.idx.to_str().unwrap()],
        None,
    );
    let fields = |id: &[u8]| {
        let id = std::str::from_utf8(id).unwrap().trim();
        let listing = std::str::from_utf8(&listing).unwrap();
        let line = listing.lines().find(|l| l.starts_with(id)).unwrap();
        line.split_whitespace().count()
    };
    assert_eq!(
        fields(&newest),
        5,
        "whole: id, type, size, size in pack, offset"
    );
    assert_eq!(fields(&older), 7, "a delta: also its depth and base");
    // A pack git wrote (with its own deltas) merges too.
    for round in 70..75 {
        std::fs::write(
            dir.join(format!("builds/2026/12/01/05/r{round:04}.yaml")),
            "x\n",
        )
        .unwrap();
        git(dir, &["add", "-A"], None);
        git(dir, &["commit", "-q", "-m", "loose"], None);
    }
    git(dir, &["repack", "-q", "-d"], None);
    commit_as_packs(dir, 75..78);
    assert!(list_packs(&dir.join(".git/objects/pack")).unwrap().len() >= 3);
    merge_all(dir);
    // Every object reads back through gix as git reads it.
    let repo = gix::open(dir).unwrap();
    let all = git(
        dir,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname)",
        ],
        None,
    );
    let all = String::from_utf8(all).unwrap();
    let ids: Vec<&str> = all.lines().collect();
    for (id, (_, want)) in ids.iter().zip(cat_all(dir, &ids)) {
        let id = ObjectId::from_hex(id.as_bytes()).unwrap();
        let (_, data) = super::super::read_object(&repo, &id).unwrap().unwrap();
        assert_eq!(data, want, "{id}");
    }
}
