//! The checkpoint of one shard's log: which events were live (committed and not taken) at
//! log position `position`, and which segments existed. Replay applies everything after
//! `position` and, before it, only loads the puts the checkpoint lists as live; segments
//! wholly before `position` and older than every live event are deleted once the
//! checkpoint is durable.
//!
//! The checkpoint is an optimisation, never the only copy of anything: the segments alone
//! replay to the same state (deletions only drop fully consumed prefixes), so a damaged or
//! missing checkpoint costs a longer replay, not data. That is why Flume's
//! `useDualCheckpoints`/`backupCheckpointDir` are not needed.
//!
//! It is written atomically: `checkpoint.tmp`, fsync, rename over `checkpoint`, fsync the
//! directory. The file is `magic | version | fields | crc32`.

use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FFWALCKP";
const VERSION: u32 = 1;
pub const FILE: &str = "checkpoint";
const TMP: &str = "checkpoint.tmp";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentInfo {
    pub start: u64,
    pub len: u64,
    /// Highest put seq in the segment, or `None` if it holds no puts.
    pub max_seq: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub shard: u32,
    pub written_at_ms: u64,
    /// LSN up to which the log is reflected here (a transaction boundary).
    pub position: u64,
    pub next_seq: u64,
    pub next_tx: u64,
    pub segments: Vec<SegmentInfo>,
    /// Live seqs as runs `start..start+count`, ascending.
    pub live: Vec<(u64, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    #[error("{0}: damaged checkpoint: {1}")]
    Damaged(PathBuf, &'static str),
}

impl Checkpoint {
    pub fn live_count(&self) -> u64 {
        self.live.iter().map(|&(_, n)| u64::from(n)).sum()
    }

    pub fn is_live(&self, seq: u64) -> bool {
        let i = self.live.partition_point(|&(s, _)| s <= seq);
        i > 0 && {
            let (s, n) = self.live[i - 1];
            seq < s.saturating_add(u64::from(n))
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.segments.len() * 24 + self.live.len() * 12);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.shard.to_le_bytes());
        for v in [
            self.written_at_ms,
            self.position,
            self.next_seq,
            self.next_tx,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        for s in &self.segments {
            b.extend_from_slice(&s.start.to_le_bytes());
            b.extend_from_slice(&s.len.to_le_bytes());
            b.extend_from_slice(&s.max_seq.map_or(u64::MAX, |m| m).to_le_bytes());
        }
        b.extend_from_slice(&(self.live.len() as u32).to_le_bytes());
        for (s, n) in &self.live {
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&n.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Checkpoint, &'static str> {
        if b.len() < 4 + MAGIC.len() {
            return Err("too short");
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err("crc mismatch");
        }
        let mut p = 0usize;
        let mut take = |n: usize| -> Result<&[u8], &'static str> {
            let s = body.get(p..p + n).ok_or("truncated")?;
            p += n;
            Ok(s)
        };
        if take(8)? != MAGIC {
            return Err("bad magic");
        }
        let u32_ = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap());
        let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap());
        if u32_(take(4)?) != VERSION {
            return Err("unsupported version");
        }
        let shard = u32_(take(4)?);
        let written_at_ms = u64_(take(8)?);
        let position = u64_(take(8)?);
        let next_seq = u64_(take(8)?);
        let next_tx = u64_(take(8)?);
        let nseg = u32_(take(4)?) as usize;
        if nseg > body.len() / 24 {
            return Err("segment count exceeds the file");
        }
        let mut segments = Vec::with_capacity(nseg);
        for _ in 0..nseg {
            let start = u64_(take(8)?);
            let len = u64_(take(8)?);
            let m = u64_(take(8)?);
            segments.push(SegmentInfo {
                start,
                len,
                max_seq: (m != u64::MAX).then_some(m),
            });
        }
        let nlive = u32_(take(4)?) as usize;
        if nlive > body.len() / 12 {
            return Err("run count exceeds the file");
        }
        let mut live = Vec::with_capacity(nlive);
        for _ in 0..nlive {
            live.push((u64_(take(8)?), u32_(take(4)?)));
        }
        if p != body.len() {
            return Err("trailing bytes");
        }
        if live.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("live runs out of order");
        }
        Ok(Checkpoint {
            shard,
            written_at_ms,
            position,
            next_seq,
            next_tx,
            segments,
            live,
        })
    }
}

/// Reads `dir/checkpoint`: `Ok(None)` when there is none.
pub fn read(dir: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(b) => Checkpoint::decode(&b)
            .map(Some)
            .map_err(|e| CheckpointError::Damaged(path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CheckpointError::Io(path, e)),
    }
}

/// Writes the checkpoint atomically, blocking (start-up, tools, tests).
pub fn write_blocking(dir: &Path, c: &Checkpoint) -> Result<(), CheckpointError> {
    let tmp = dir.join(TMP);
    let io = |e| CheckpointError::Io(tmp.clone(), e);
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut f, &c.encode()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, dir.join(FILE)).map_err(io)?;
    super::segment::sync_dir(dir).map_err(|e| CheckpointError::Io(dir.to_path_buf(), e))
}

/// Writes the checkpoint atomically through io_uring, so the shard's loop keeps serving
/// connections while the file and the directory are synced.
pub async fn write_async(dir: &Path, c: &Checkpoint) -> Result<(), CheckpointError> {
    let tmp = dir.join(TMP);
    let io = |e| CheckpointError::Io(tmp.clone(), e);
    let f = tokio_uring::fs::File::create(&tmp).await.map_err(io)?;
    let (r, _) = f.write_all_at(c.encode(), 0).await;
    r.map_err(io)?;
    f.sync_all().await.map_err(io)?;
    f.close().await.map_err(io)?;
    tokio_uring::fs::rename(&tmp, dir.join(FILE))
        .await
        .map_err(io)?;
    let d = tokio_uring::fs::File::open(dir)
        .await
        .map_err(|e| CheckpointError::Io(dir.to_path_buf(), e))?;
    d.sync_all()
        .await
        .map_err(|e| CheckpointError::Io(dir.to_path_buf(), e))?;
    let _ = d.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            shard: 1,
            written_at_ms: 123,
            position: 4096,
            next_seq: 50,
            next_tx: 9,
            segments: vec![
                SegmentInfo {
                    start: 0,
                    len: 4096,
                    max_seq: Some(40),
                },
                SegmentInfo {
                    start: 4096,
                    len: 4096,
                    max_seq: None,
                },
            ],
            live: vec![(10, 5), (30, 1)],
        }
    }

    #[test]
    fn round_trips_and_answers_membership() {
        let c = sample();
        let d = Checkpoint::decode(&c.encode()).unwrap();
        assert_eq!(d, c);
        assert!(d.is_live(10) && d.is_live(14) && d.is_live(30));
        assert!(!d.is_live(9) && !d.is_live(15) && !d.is_live(31));
        assert_eq!(d.live_count(), 6);
    }

    #[test]
    fn any_damage_is_detected() {
        let b = sample().encode();
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 1;
            assert!(
                Checkpoint::decode(&d).is_err(),
                "flip at {i} went unnoticed"
            );
        }
        assert!(Checkpoint::decode(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        write_blocking(dir.path(), &sample()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(sample()));
        assert!(!dir.path().join(TMP).exists());
    }
}
