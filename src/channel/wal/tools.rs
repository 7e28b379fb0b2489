//! `flume-fast channel verify DIR` and `flume-fast channel stat DIR`: offline inspection of
//! a file channel's data directory (a `dataDirs` entry holding `shard-*` directories, or
//! one shard directory). `verify` checks every frame's crc and decodes every record, like
//! Flume's File Channel Integrity Tool, and with `--quarantine` copies each damaged region
//! to `<shard>/quarantine/` and overwrites it with padding so replay skips it silently from
//! then on. `stat` replays read-only and prints pending events and bytes per shard, the
//! segments and the last checkpoint.

use super::checkpoint::{self, Checkpoint};
use super::config::parse_shard_dir;
use super::layout::DirLock;
use super::record::{self, Item, Record};
use super::replay::{self, Replayed, SegmentInput};
use super::segment::{self, HEADER_LEN};
use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The shard directories under `dir`, or `dir` itself if it holds segments.
pub fn shard_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    if !segment::list(dir)?.is_empty() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let k = e.file_name().to_str().and_then(parse_shard_dir)?;
            e.path().is_dir().then(|| (k, e.path()))
        })
        .collect();
    out.sort();
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

/// Maps a shard directory's segments read-only.
pub fn load_segments(dir: &Path) -> io::Result<Vec<SegmentInput>> {
    let mut out = Vec::new();
    for (start, path) in segment::list(dir)? {
        let f = std::fs::File::open(&path)?;
        // SAFETY: read-only mapping; a running agent only appends past what we read, and
        // a torn view of its tail is reported like any damage.
        let map = unsafe { memmap2::Mmap::map(&f)? };
        out.push(SegmentInput {
            start,
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            data: bytes::Bytes::from_owner(map),
        });
    }
    Ok(out)
}

/// Replays one shard directory read-only (with its checkpoint when given).
pub fn inspect(dir: &Path, ckpt_dir: Option<&Path>) -> io::Result<(Replayed, Option<Checkpoint>)> {
    let segs = load_segments(dir)?;
    let ckpt = match ckpt_dir.map(checkpoint::read) {
        Some(Ok(c)) => c,
        Some(Err(_)) | None => None,
    };
    Ok((replay::replay(&segs, ckpt.as_ref()), ckpt))
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    pub segments: u64,
    pub records: u64,
    pub damaged: u64,
    pub quarantined: u64,
}

/// Checks every frame under `dir`, writing a report to `out`.
pub fn verify(dir: &Path, quarantine: bool, out: &mut String) -> io::Result<VerifySummary> {
    let mut sum = VerifySummary::default();
    let shards = shard_dirs(dir)?;
    if shards.is_empty() {
        let _ = writeln!(
            out,
            "{}: no segments and no shard-* directories",
            dir.display()
        );
    }
    for shard in shards {
        let _lock = match DirLock::acquire(&shard) {
            Ok(l) => Some(l),
            Err(e) if quarantine => {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, e.to_string()))
            }
            Err(_) => {
                let _ = writeln!(
                    out,
                    "{}: in use by a running agent; its newest records may still be in flight",
                    shard.display()
                );
                None
            }
        };
        let segs = load_segments(&shard)?;
        let _ = writeln!(out, "{}: {} segment(s)", shard.display(), segs.len());
        let mut fixes: Vec<(String, record::Framing, usize, usize, bool)> = Vec::new();
        for s in &segs {
            sum.segments += 1;
            let framing = match segment::check_header(&s.data) {
                Ok((_, framing)) => framing,
                Err(e) => {
                    sum.damaged += 1;
                    let _ = writeln!(out, "  {} offset 0: {e}", s.name);
                    continue;
                }
            };
            for item in record::Scanner::new(&s.data, HEADER_LEN, framing) {
                match item {
                    Item::Frame { offset, at, len } => match record::decode(&s.data, at, len) {
                        Ok(Record::Pad) => {}
                        Ok(_) => sum.records += 1,
                        Err(e) => {
                            sum.damaged += 1;
                            let fl = framing.frame_len(len);
                            let _ = writeln!(
                                out,
                                "  {} offset {offset}: undecodable record: {e} ({fl} bytes)",
                                s.name
                            );
                            fixes.push((s.name.clone(), framing, offset, fl, false));
                        }
                    },
                    Item::Damaged {
                        offset,
                        len,
                        tail,
                        reason,
                    } => {
                        sum.damaged += 1;
                        let _ = writeln!(
                            out,
                            "  {} offset {offset}: {reason} ({len} bytes{})",
                            s.name,
                            if tail {
                                ", to the end of the segment"
                            } else {
                                ""
                            }
                        );
                        fixes.push((s.name.clone(), framing, offset, len, tail));
                    }
                }
            }
        }
        let r = replay::replay(&segs, None);
        let _ = writeln!(
            out,
            "  {} live event(s), {} body bytes; {} uncommitted transaction(s)",
            r.live.len(),
            r.live_bytes(),
            r.discarded_txs
        );
        drop(segs);
        if quarantine && !fixes.is_empty() {
            let qdir = shard.join("quarantine");
            std::fs::create_dir_all(&qdir)?;
            for (name, framing, offset, len, tail) in fixes {
                let path = shard.join(&name);
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)?;
                let mut bad = vec![0u8; len];
                f.read_exact_at(&mut bad, offset as u64)?;
                std::fs::write(qdir.join(format!("{name}-{offset}.bad")), &bad)?;
                let fill = if tail || len < framing.header_len() + record::ALIGN {
                    vec![0u8; len]
                } else {
                    record::encode_pad(framing, offset, len)
                };
                f.write_all_at(&fill, offset as u64)?;
                f.sync_all()?;
                sum.quarantined += 1;
                let _ = writeln!(
                    out,
                    "  quarantined {name} offset {offset} ({len} bytes) to {}",
                    qdir.display()
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "{} segment(s), {} record(s), {} damaged, {} quarantined",
        sum.segments, sum.records, sum.damaged, sum.quarantined
    );
    Ok(sum)
}

/// Pending events and bytes per shard, segments and the last checkpoint.
pub fn stat(dir: &Path, ckpt_root: Option<&Path>, out: &mut String) -> io::Result<()> {
    let mut total = (0usize, 0u64);
    for shard in shard_dirs(dir)? {
        let ck = ckpt_root.map(|c| {
            shard
                .file_name()
                .map_or_else(|| c.to_path_buf(), |n| c.join(n))
        });
        let (r, c) = inspect(&shard, ck.as_deref())?;
        let bytes = r.live_bytes();
        total.0 += r.live.len();
        total.1 += bytes;
        let disk: u64 = r.segments.iter().map(|s| s.len).sum();
        let _ = writeln!(
            out,
            "{}: {} pending event(s), {} body bytes; {} segment(s), {} bytes on disk",
            shard.display(),
            r.live.len(),
            bytes,
            r.segments.len(),
            disk
        );
        for s in &r.segments {
            let _ = writeln!(
                out,
                "  {} used {} of {} bytes",
                segment::file_name(s.start),
                s.end,
                s.len
            );
        }
        match c {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "  last checkpoint: written at {} ms since the epoch, position {}, {} live event(s)",
                    c.written_at_ms,
                    c.position,
                    c.live_count()
                );
            }
            None if ckpt_root.is_some() => {
                let _ = writeln!(out, "  no readable checkpoint");
            }
            None => {}
        }
        for i in &r.issues {
            let _ = writeln!(out, "  issue: {i}");
        }
    }
    let _ = writeln!(
        out,
        "total: {} pending event(s), {} body bytes",
        total.0, total.1
    );
    Ok(())
}
