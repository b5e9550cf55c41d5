//! Durable pack files: seakeeper writes each batch of new objects as one pack (plus its v2
//! index) and fsyncs both before any ref may point at them, and merges small packs
//! geometrically so that lookups stay a few index probes however many batches were written.
//!
//! Batches are written without deltas, in one pass. Merging packs adds deltas for the trees
//! that the ledger rewrites in every commit (see [`super::delta`]).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ObjectId, ObjectKind, sync_dir};

/// An object to be written into a pack.
#[derive(Debug, Clone)]
pub struct PackObject {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its id (the caller computed it with [`super::object_id`]).
    pub id: ObjectId,
    /// Its raw content.
    pub data: Vec<u8>,
}

/// A pack file and what its index says about it.
#[derive(Debug, Clone)]
pub struct PackInfo {
    /// Path of the `.pack` file.
    pub pack: PathBuf,
    /// Path of the `.idx` file.
    pub idx: PathBuf,
    /// Number of objects in it.
    pub objects: u32,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn tmp_name(dir: &Path, ext: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("tmp_seakeeper_{}_{n}.{ext}", std::process::id()))
}

fn entry_header(kind: ObjectKind, size: usize) -> Vec<u8> {
    entry_header_raw(kind.pack_type(), size as u64)
}

/// An entry header for a pack type number (6: a delta against an earlier entry).
fn entry_header_raw(kind: u8, mut size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    let mut byte = (kind << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        out.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(byte);
    out
}

/// Compresses one object. Every pack entry is its own zlib stream, and setting up a deflate
/// state zeroes tens of kilobytes, which costs more than compressing a small ledger object.
/// Trees are mostly 20-byte ids that do not compress, and small blobs gain little, so both are
/// written as stored (uncompressed) zlib blocks, which any zlib reads; larger blobs are
/// deflated.
fn compress(kind: ObjectKind, data: &[u8]) -> Vec<u8> {
    if kind == ObjectKind::Tree || data.len() < 512 {
        stored_zlib(data)
    } else {
        deflate(data)
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let config = zlib_rs::DeflateConfig {
        level: 1,
        ..zlib_rs::DeflateConfig::default()
    };
    let mut out = vec![0u8; zlib_rs::compress_bound(data.len())];
    let (compressed, rc) = zlib_rs::compress_slice(&mut out, data, config);
    assert_eq!(
        rc,
        zlib_rs::ReturnCode::Ok,
        "deflating into a buffer of compress_bound bytes cannot fail"
    );
    let n = compressed.len();
    out.truncate(n);
    out
}

/// A zlib stream of stored deflate blocks (RFC 1950/1951): no compression, no setup cost.
fn stored_zlib(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 11 + 5 * (data.len() / 65535));
    out.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = data.chunks(65535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for part in data.chunks(5552) {
        for &byte in part {
            a += u32::from(byte);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// Compresses the entries on all cores; returns each entry's bytes (header and deflated data).
fn encode_entries(objects: &[&PackObject]) -> Vec<Vec<u8>> {
    let encode_all = |part: &[&PackObject]| {
        part.iter()
            .map(|o| {
                let mut e = entry_header(o.kind, o.data.len());
                e.extend_from_slice(&compress(o.kind, &o.data));
                e
            })
            .collect::<Vec<_>>()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if objects.len() < 64 || threads == 1 {
        return encode_all(objects);
    }
    let chunk = objects.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = objects
            .chunks(chunk)
            .map(|part| s.spawn(move || encode_all(part)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("pack encoding threads do not panic"))
            .collect()
    })
}

/// Writes `objects` (deduplicated by id) as one pack and index into `pack_dir`
/// (`<git dir>/objects/pack`), durably: both files are fsynced, renamed into place (index
/// last, since git only sees a pack through its index) and the directory is fsynced.
/// Returns `None` when there was nothing to write.
pub fn write_pack(pack_dir: &Path, objects: &[PackObject]) -> std::io::Result<Option<PackInfo>> {
    let mut sorted: Vec<&PackObject> = objects.iter().collect();
    sorted.sort_by_key(|o| o.id);
    sorted.dedup_by(|a, b| a.id == b.id);
    let entries = encode_entries(&sorted);
    write_entries(pack_dir, sorted.iter().map(|o| o.id).zip(entries).collect())
}

/// Writes already-encoded pack entries, sorted by id and without duplicates.
fn write_entries(
    pack_dir: &Path,
    entries: Vec<(ObjectId, Vec<u8>)>,
) -> std::io::Result<Option<PackInfo>> {
    if entries.is_empty() {
        return Ok(None);
    }
    let mut out = PackWriter::create(pack_dir, entries.len())?;
    for (id, e) in &entries {
        out.add(*id, e)?;
    }
    out.finish().map(Some)
}

/// A pack being written entry by entry (already encoded), then its index: both fsynced and
/// renamed into place (index last, since git only sees a pack through its index), then the
/// directory fsynced. Entries may come in any order, without duplicates.
struct PackWriter<'d> {
    pack_dir: &'d Path,
    tmp_pack: PathBuf,
    w: std::io::BufWriter<fs::File>,
    hash: sha1::Sha1,
    offset: u64,
    ids: Vec<ObjectId>,
    crcs: Vec<u32>,
    offsets: Vec<u64>,
}

impl<'d> PackWriter<'d> {
    fn create(pack_dir: &'d Path, count: usize) -> std::io::Result<PackWriter<'d>> {
        use sha1::Digest as _;
        let tmp_pack = tmp_name(pack_dir, "pack");
        let file = fs::File::create(&tmp_pack)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut header = Vec::with_capacity(12);
        header.extend_from_slice(b"PACK");
        header.extend_from_slice(&2u32.to_be_bytes());
        header.extend_from_slice(&(count as u32).to_be_bytes());
        let mut hash = sha1::Sha1::new();
        hash.update(&header);
        w.write_all(&header)?;
        Ok(PackWriter {
            pack_dir,
            tmp_pack,
            w,
            hash,
            offset: header.len() as u64,
            ids: Vec::with_capacity(count),
            crcs: Vec::with_capacity(count),
            offsets: Vec::with_capacity(count),
        })
    }

    fn add(&mut self, id: ObjectId, entry: &[u8]) -> std::io::Result<()> {
        use sha1::Digest as _;
        self.ids.push(id);
        self.offsets.push(self.offset);
        self.crcs.push(crc32fast::hash(entry));
        self.hash.update(entry);
        self.w.write_all(entry)?;
        self.offset += entry.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<PackInfo> {
        use sha1::Digest as _;
        let checksum: [u8; 20] = self.hash.finalize().into();
        self.w.write_all(&checksum)?;
        let file = self.w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let mut rows: Vec<(ObjectId, u32, u64)> = (0..self.ids.len())
            .map(|i| (self.ids[i], self.crcs[i], self.offsets[i]))
            .collect();
        rows.sort_unstable_by_key(|r| r.0);
        let ids: Vec<ObjectId> = rows.iter().map(|r| r.0).collect();
        let crcs: Vec<u32> = rows.iter().map(|r| r.1).collect();
        let offsets: Vec<u64> = rows.iter().map(|r| r.2).collect();
        let idx = encode_index(&ids, &crcs, &offsets, &checksum);
        let name = hex::encode(checksum);
        let tmp_idx = tmp_name(self.pack_dir, "idx");
        {
            let mut f = fs::File::create(&tmp_idx)?;
            f.write_all(&idx)?;
            f.sync_all()?;
        }
        let pack = self.pack_dir.join(format!("pack-{name}.pack"));
        let idx_path = self.pack_dir.join(format!("pack-{name}.idx"));
        fs::rename(&self.tmp_pack, &pack)?;
        fs::rename(&tmp_idx, &idx_path)?;
        sync_dir(self.pack_dir)?;
        Ok(PackInfo {
            pack,
            idx: idx_path,
            objects: self.ids.len() as u32,
        })
    }
}

/// Where an entry of a source pack is, and what it holds.
#[derive(Debug, Clone, Copy)]
struct Source {
    pack: usize,
    start: u64,
    end: u64,
    /// Bytes before the zlib stream: type and size, then a delta's base offset or id.
    header: usize,
    /// The size the header gives (a delta's own size for a delta).
    size: u64,
    stored: super::delta::Stored,
}

/// Reads an entry header: its type, size, and length.
fn parse_entry_header(b: &[u8]) -> Option<(u8, u64, usize)> {
    let first = *b.first()?;
    let kind = (first >> 4) & 7;
    let mut size = u64::from(first & 0x0f);
    let mut shift = 4;
    let mut used = 1;
    let mut c = first;
    while c & 0x80 != 0 {
        c = *b.get(used)?;
        used += 1;
        if shift > 57 {
            return None;
        }
        size |= u64::from(c & 0x7f) << shift;
        shift += 7;
    }
    Some((kind, size, used))
}

/// Reads an OFS_DELTA's distance back to its base.
fn parse_ofs(b: &[u8]) -> Option<(u64, usize)> {
    let mut c = *b.first()?;
    let mut used = 1;
    let mut ofs = u64::from(c & 0x7f);
    while c & 0x80 != 0 {
        c = *b.get(used)?;
        used += 1;
        ofs = ofs.checked_add(1)?.checked_mul(128)? | u64::from(c & 0x7f);
    }
    Some((ofs, used))
}

fn ofs_bytes(mut ofs: u64) -> Vec<u8> {
    let mut out = vec![(ofs & 0x7f) as u8];
    ofs >>= 7;
    while ofs > 0 {
        ofs -= 1;
        out.push(0x80 | (ofs & 0x7f) as u8);
        ofs >>= 7;
    }
    out.reverse();
    out
}

/// The entries of one pack, by object, or `None` if it cannot be merged (unreadable, or a
/// delta whose base is not in it).
fn read_sources(
    info: &PackInfo,
    n: usize,
    file: &fs::File,
) -> std::io::Result<Option<Vec<(ObjectId, Source)>>> {
    use super::delta::Stored;
    use std::os::unix::fs::FileExt as _;
    let (ids, offsets) = read_index_offsets(&info.idx)?;
    let ids_sorted = {
        let mut v = ids.clone();
        v.sort_unstable();
        v
    };
    let len = file.metadata()?.len();
    let mut magic = [0u8; 4];
    if len < 32 || file.read_exact_at(&mut magic, 0).is_err() || &magic != b"PACK" {
        return Ok(None);
    }
    let end_of_entries = len - 20;
    let mut by_offset: Vec<(u64, ObjectId)> = offsets.into_iter().zip(ids).collect();
    by_offset.sort_by_key(|(o, _)| *o);
    let at_offset: std::collections::HashMap<u64, ObjectId> = by_offset.iter().copied().collect();
    let mut out = Vec::with_capacity(by_offset.len());
    let mut head = [0u8; 32];
    for (k, (start, id)) in by_offset.iter().enumerate() {
        let end = by_offset.get(k + 1).map_or(end_of_entries, |(o, _)| *o);
        if end <= *start || end > end_of_entries {
            return Ok(None);
        }
        let want = ((end - start) as usize).min(head.len());
        if file.read_exact_at(&mut head[..want], *start).is_err() {
            return Ok(None);
        }
        let Some((kind, size, used)) = parse_entry_header(&head[..want]) else {
            return Ok(None);
        };
        let (stored, header) = match kind {
            1..=4 => (Stored::Whole(kind), used),
            6 => {
                let Some((ofs, more)) = parse_ofs(&head[used..want]) else {
                    return Ok(None);
                };
                let Some(base) = start.checked_sub(ofs).and_then(|b| at_offset.get(&b)) else {
                    return Ok(None);
                };
                (Stored::Delta(*base), used + more)
            }
            7 => {
                let Some(raw) = head.get(used..used + 20).filter(|_| used + 20 <= want) else {
                    return Ok(None);
                };
                let base = ObjectId::from(<[u8; 20]>::try_from(raw).expect("20 bytes"));
                if ids_sorted.binary_search(&base).is_err() {
                    return Ok(None);
                }
                (Stored::Delta(base), used + 20)
            }
            _ => return Ok(None),
        };
        out.push((
            *id,
            Source {
                pack: n,
                start: *start,
                end,
                header,
                size,
                stored,
            },
        ));
    }
    Ok(Some(out))
}

/// Reads objects of the packs being merged (resolving deltas), keeping the last few megabytes
/// read: a tree's version in one commit is the base of the next.
struct Resolver<'a> {
    files: &'a [fs::File],
    sources: &'a std::collections::HashMap<ObjectId, Source>,
    cache: std::collections::HashMap<ObjectId, std::rc::Rc<Vec<u8>>>,
    bytes: usize,
}

impl Resolver<'_> {
    const BUDGET: usize = 8 << 20;

    fn get(&mut self, id: &ObjectId, depth: u32) -> Option<std::rc::Rc<Vec<u8>>> {
        use std::io::Read as _;
        use std::os::unix::fs::FileExt as _;
        if let Some(d) = self.cache.get(id) {
            return Some(d.clone());
        }
        let src = *self.sources.get(id)?;
        if depth > 1000 {
            return None;
        }
        let mut raw = vec![0u8; (src.end - src.start) as usize];
        self.files[src.pack]
            .read_exact_at(&mut raw, src.start)
            .ok()?;
        let mut body = Vec::with_capacity(src.size as usize);
        flate2::read::ZlibDecoder::new(raw.get(src.header..)?)
            .take(src.size + 1)
            .read_to_end(&mut body)
            .ok()?;
        if body.len() as u64 != src.size {
            return None;
        }
        let data = match src.stored {
            super::delta::Stored::Whole(_) => body,
            super::delta::Stored::Delta(base) => {
                let base = self.get(&base, depth + 1)?;
                super::delta::apply(&base, &body)?
            }
        };
        if self.bytes + data.len() > Self::BUDGET {
            self.cache.clear();
            self.bytes = 0;
        }
        self.bytes += data.len();
        let data = std::rc::Rc::new(data);
        self.cache.insert(*id, data.clone());
        Some(data)
    }
}

/// Merges packs into one. Entries are copied as they are (no recompression; a delta's base
/// offset is rewritten), and, with `deltas`, trees stored whole get deltas against
/// their versions in the parent commits ([`super::delta::tree_deltas`]). Bases are written
/// before their deltas. Packs that cannot be read, or that are thin, are left alone. Returns
/// the new pack and the packs it replaced; the caller removes those.
///
/// Streams the entries: the indexes and the new deltas are held in memory, and one entry at a
/// time is copied, so that merging a large ledger does not need its size in memory. Objects are
/// read with `pread`, never mapped, so a merge does not leave the packs resident.
pub fn merge_packs(
    pack_dir: &Path,
    packs: &[PackInfo],
    deltas: bool,
) -> std::io::Result<Option<(PackInfo, Vec<PackInfo>)>> {
    use super::delta::Stored;
    use std::collections::HashMap;
    use std::os::unix::fs::FileExt as _;
    // The largest (oldest) packs first: bases tend to come before the newer versions.
    let mut packs: Vec<&PackInfo> = packs.iter().collect();
    packs.sort_by_key(|p| std::cmp::Reverse(p.objects));
    let mut sources: HashMap<ObjectId, Source> = HashMap::new();
    let mut order: Vec<ObjectId> = Vec::new();
    let mut files = Vec::new();
    let mut used = Vec::new();
    for info in packs {
        let file = fs::File::open(&info.pack)?;
        let Some(entries) = read_sources(info, files.len(), &file)? else {
            continue;
        };
        for (id, src) in entries {
            // The first pack that has an object wins.
            if let std::collections::hash_map::Entry::Vacant(v) = sources.entry(id) {
                v.insert(src);
                order.push(id);
            }
        }
        files.push(file);
        used.push(info.clone());
    }
    if used.len() < 2 {
        return Ok(None);
    }
    let new_deltas = if deltas {
        let stored: HashMap<ObjectId, Stored> =
            sources.iter().map(|(id, s)| (*id, s.stored)).collect();
        let mut resolver = Resolver {
            files: &files,
            sources: &sources,
            cache: HashMap::new(),
            bytes: 0,
        };
        super::delta::tree_deltas(&stored, &mut |id| resolver.get(id, 0))
    } else {
        HashMap::new()
    };
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut out = PackWriter::create(pack_dir, sources.len())?;
    // Where each object went, and the length of its delta chain.
    let mut written: HashMap<ObjectId, (u64, u32)> = HashMap::with_capacity(sources.len());
    let mut buf = Vec::new();
    let mut stack = Vec::new();
    for id in &order {
        stack.push(*id);
        while let Some(&top) = stack.last() {
            if written.contains_key(&top) {
                stack.pop();
                continue;
            }
            let src = sources[&top];
            let base = match (new_deltas.get(&top), src.stored) {
                (Some(d), _) => Some(d.base),
                (None, Stored::Delta(b)) => Some(b),
                (None, Stored::Whole(_)) => None,
            };
            if let Some(b) = base
                && !written.contains_key(&b)
            {
                if stack.contains(&b) || !sources.contains_key(&b) {
                    return Err(bad(format!("the delta chain of {top} is broken at {b}")));
                }
                stack.push(b);
                continue;
            }
            stack.pop();
            buf.resize((src.end - src.start) as usize, 0);
            files[src.pack].read_exact_at(&mut buf, src.start)?;
            let here = out.offset;
            let depth = match (new_deltas.get(&top), src.stored, base) {
                (Some(d), Stored::Whole(_), Some(b)) if written[&b].1 < super::delta::MAX_DEPTH => {
                    let (at, depth) = written[&b];
                    let mut entry = entry_header_raw(6, d.delta.len() as u64);
                    entry.extend_from_slice(&ofs_bytes(here - at));
                    entry.extend_from_slice(&if d.delta.len() < 512 {
                        stored_zlib(&d.delta)
                    } else {
                        deflate(&d.delta)
                    });
                    out.add(top, &entry)?;
                    depth + 1
                }
                (_, Stored::Delta(_), Some(b)) => {
                    let (at, depth) = written[&b];
                    let mut entry = entry_header_raw(6, src.size);
                    entry.extend_from_slice(&ofs_bytes(here - at));
                    entry.extend_from_slice(&buf[src.header..]);
                    out.add(top, &entry)?;
                    depth + 1
                }
                _ => {
                    out.add(top, &buf)?;
                    0
                }
            };
            written.insert(top, (here, depth));
        }
    }
    Ok(Some((out.finish()?, used)))
}

fn read_index_offsets(idx: &Path) -> std::io::Result<(Vec<ObjectId>, Vec<u64>)> {
    let data = fs::read(idx)?;
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a v2 pack index", idx.display()),
        )
    };
    let ids = ids_of_index(&data).ok_or_else(bad)?;
    let n = ids.len();
    let off_start = 8 + 1024 + n * 24;
    let large_start = off_start + n * 4;
    let mut offsets = Vec::with_capacity(n);
    for i in 0..n {
        let raw = data
            .get(off_start + i * 4..off_start + i * 4 + 4)
            .ok_or_else(bad)?;
        let v = u32::from_be_bytes(raw.try_into().expect("4 bytes"));
        if v & 0x8000_0000 == 0 {
            offsets.push(u64::from(v));
        } else {
            let k = (v & 0x7fff_ffff) as usize;
            let raw = data
                .get(large_start + k * 8..large_start + k * 8 + 8)
                .ok_or_else(bad)?;
            offsets.push(u64::from_be_bytes(raw.try_into().expect("8 bytes")));
        }
    }
    Ok((ids, offsets))
}

fn ids_of_index(data: &[u8]) -> Option<Vec<ObjectId>> {
    if data.len() < 8 + 1024 || &data[..4] != b"\xfftOc" || data[4..8] != 2u32.to_be_bytes() {
        return None;
    }
    let n = u32::from_be_bytes(data[8 + 255 * 4..8 + 256 * 4].try_into().ok()?) as usize;
    let start = 8 + 1024;
    let ids = data.get(start..start + n * 20)?;
    Some(
        ids.chunks_exact(20)
            .map(|c| ObjectId::from(<[u8; 20]>::try_from(c).expect("20 bytes")))
            .collect(),
    )
}

fn encode_index(
    sorted: &[ObjectId],
    crcs: &[u32],
    offsets: &[u64],
    pack_checksum: &[u8; 20],
) -> Vec<u8> {
    use sha1::Digest as _;
    let n = sorted.len();
    let mut out = Vec::with_capacity(8 + 1024 + n * 28 + 40);
    out.extend_from_slice(b"\xfftOc");
    out.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for o in sorted {
        fanout[o.as_bytes()[0] as usize] += 1;
    }
    let mut running = 0u32;
    for count in fanout {
        running += count;
        out.extend_from_slice(&running.to_be_bytes());
    }
    for o in sorted {
        out.extend_from_slice(o.as_bytes());
    }
    for crc in crcs {
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for &off in offsets {
        if off < 0x8000_0000 {
            out.extend_from_slice(&(off as u32).to_be_bytes());
        } else {
            out.extend_from_slice(&(0x8000_0000u32 | large.len() as u32).to_be_bytes());
            large.push(off);
        }
    }
    for off in large {
        out.extend_from_slice(&off.to_be_bytes());
    }
    out.extend_from_slice(pack_checksum);
    let idx_checksum: [u8; 20] = sha1::Sha1::digest(&out).into();
    out.extend_from_slice(&idx_checksum);
    out
}

/// Lists the packs in `pack_dir` that have an index and no `.keep` file, with their object
/// counts read from the index's fan-out table.
pub fn list_packs(pack_dir: &Path) -> std::io::Result<Vec<PackInfo>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(pack_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "idx") {
            let pack = path.with_extension("pack");
            if !pack.exists() || path.with_extension("keep").exists() {
                continue;
            }
            if let Some(objects) = read_index_count(&path)? {
                out.push(PackInfo {
                    pack,
                    idx: path,
                    objects,
                });
            }
        }
    }
    Ok(out)
}

fn read_index_count(idx: &Path) -> std::io::Result<Option<u32>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = fs::File::open(idx)?;
    let mut head = [0u8; 8];
    if f.read_exact(&mut head).is_err() || &head[..4] != b"\xfftOc" {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(8 + 255 * 4))?;
    let mut n = [0u8; 4];
    f.read_exact(&mut n)?;
    Ok(Some(u32::from_be_bytes(n)))
}

/// Chooses which packs to merge so that, sorted by size, each remaining pack holds more than
/// twice the objects of all smaller ones together (git's geometric repacking, factor 2): the
/// largest `k` with `count[k] <= 2 * (count[0] + ... + count[k-1])` and merge packs `0..=k`.
/// This keeps the number of packs logarithmic in the number of objects while each object is
/// rewritten a logarithmic number of times.
pub fn geometric_merge_set(mut packs: Vec<PackInfo>) -> Vec<PackInfo> {
    packs.sort_by_key(|p| p.objects);
    let mut sum = 0u64;
    let mut take = 0;
    for (i, p) in packs.iter().enumerate() {
        if i > 0 && u64::from(p.objects) <= 2 * sum {
            take = i + 1;
        }
        sum += u64::from(p.objects);
    }
    packs.truncate(take);
    packs
}

/// Removes pack files (pack, index, and any reverse index or bitmap) after they were merged.
pub fn remove_pack(info: &PackInfo) -> std::io::Result<()> {
    for ext in ["idx", "pack", "rev", "bitmap"] {
        match fs::remove_file(info.pack.with_extension(ext)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes temporary files of seakeeper pack writers that died, if older than `min_age`.
pub fn remove_stale_temporaries(pack_dir: &Path, min_age: std::time::Duration) {
    let Ok(rd) = fs::read_dir(pack_dir) else {
        return;
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("tmp_seakeeper_") {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests;
