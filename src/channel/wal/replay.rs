//! Replay: rebuilds a shard's live events (committed puts not yet taken) from its
//! segments and, when it has one, its checkpoint. Pure over bytes: the channel, the
//! `channel verify`/`stat` tools and the fuzz target all call `replay` on `Bytes`.
//!
//! Rules: a transaction counts only once its commit record is read; a rollback record
//! undoes it even after its commit; transactions left open at the end are discarded. A
//! damaged frame is reported (segment and offset) and skipped; a put transaction that was
//! open across skipped damage is recovered rather than dropped, because the damage may have
//! been its commit record, and delivering an unacknowledged event twice is allowed while
//! losing an acknowledged one is not. Before the checkpoint's position only puts the
//! checkpoint lists as live are loaded; from it on every record applies.

use super::checkpoint::Checkpoint;
use super::record::{self, Item, Record};
use super::segment::{self, HEADER_LEN};
use crate::event::Event;
use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

/// One segment as replay sees it.
pub struct SegmentInput {
    pub start: u64,
    /// For reports: the file name.
    pub name: String,
    /// The whole file, or a prefix of it ending where valid data ends.
    pub data: Bytes,
}

/// Something wrong that replay found; never silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub segment: String,
    pub offset: u64,
    pub len: u64,
    pub what: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "segment {} offset {}: {} ({} bytes)",
            self.segment, self.offset, self.what, self.len
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentSummary {
    pub start: u64,
    pub len: u64,
    pub max_seq: Option<u64>,
    /// Offset where valid data ends.
    pub end: u64,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub puts: u64,
    pub takes: u64,
    pub commits: u64,
    pub rollbacks: u64,
    pub pads: u64,
}

/// The live events replay finds, in seq order (the order they are served in). The log
/// hands out seqs in order, so a put nearly always lands at the back, and takes come in
/// order, so removals are nearly always at the front: both are O(1) here. A removal
/// behind the front is remembered and swept once at the end. No per-event tree work, and
/// the channel takes the result as its queue without copying it.
#[derive(Debug, Default)]
pub struct Live {
    q: VecDeque<(u64, Event)>,
    /// Seqs removed behind the front; all of them are in `q` until swept.
    dead: HashSet<u64>,
}

impl Live {
    pub fn len(&self) -> usize {
        self.q.len() - self.dead.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn insert(&mut self, seq: u64, event: Event) {
        if self.q.back().is_none_or(|&(last, _)| seq > last) {
            self.q.push_back((seq, event));
            return;
        }
        match self.q.binary_search_by_key(&seq, |&(s, _)| s) {
            Ok(i) => {
                self.q[i].1 = event;
                self.dead.remove(&seq);
            }
            Err(i) => self.q.insert(i, (seq, event)),
        }
    }

    /// Removes the events with seqs `start..start + n` that are here.
    pub fn remove_range(&mut self, start: u64, n: u32) {
        let end = start.saturating_add(u64::from(n));
        while let Some(&(s, _)) = self.q.front() {
            let was_dead = !self.dead.is_empty() && self.dead.remove(&s);
            if !was_dead && !(start..end).contains(&s) {
                break;
            }
            self.q.pop_front();
        }
        let i = self.q.partition_point(|&(s, _)| s < start);
        for &(s, _) in self.q.range(i..) {
            if s >= end {
                break;
            }
            self.dead.insert(s);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(u64, Event)> {
        self.q
            .iter()
            .filter(|(s, _)| self.dead.is_empty() || !self.dead.contains(s))
    }

    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|&(s, _)| s)
    }

    /// The live events, seq-ordered, as the channel's queue.
    pub fn into_queue(mut self) -> VecDeque<(u64, Event)> {
        if !self.dead.is_empty() {
            let dead = std::mem::take(&mut self.dead);
            self.q.retain(|(s, _)| !dead.contains(s));
        }
        self.q
    }

    pub fn into_values(self) -> impl Iterator<Item = Event> {
        self.into_queue().into_iter().map(|(_, e)| e)
    }
}

impl PartialEq for Live {
    fn eq(&self, other: &Live) -> bool {
        self.iter().eq(other.iter())
    }
}

#[derive(Debug, Default)]
pub struct Replayed {
    /// Live events by seq (ascending = the order they are served in).
    pub live: Live,
    pub next_seq: u64,
    pub next_tx: u64,
    pub segments: Vec<SegmentSummary>,
    /// Damaged frames and other inconsistencies.
    pub issues: Vec<Issue>,
    /// Uncommitted transactions dropped, and their put events.
    pub discarded_txs: u64,
    pub discarded_events: u64,
    /// Put events of transactions recovered across damage.
    pub recovered_events: u64,
    /// Events the checkpoint listed as live whose puts were not found.
    pub missing_live: u64,
    pub used_checkpoint: bool,
    pub counts: Counts,
}

impl Replayed {
    pub fn live_bytes(&self) -> u64 {
        self.live.iter().map(|(_, e)| e.body.len() as u64).sum()
    }
}

/// Replays `segments` (oldest first) from `checkpoint` (or from the segments alone).
pub fn replay(segments: &[SegmentInput], checkpoint: Option<&Checkpoint>) -> Replayed {
    let log_end = segments.last().map_or(0, |s| s.start + s.data.len() as u64);
    if let Some(c) = checkpoint {
        // A checkpoint past the log's valid end describes a log we no longer have.
        if c.position > log_end && !segments.is_empty() {
            let mut r = replay(segments, None);
            r.issues.push(Issue {
                segment: "checkpoint".into(),
                offset: c.position,
                len: 0,
                what: format!(
                    "checkpoint position {} is past the end of the log ({log_end}); replayed from the segments alone",
                    c.position
                ),
            });
            return r;
        }
    }
    let mut st = State {
        out: Replayed {
            used_checkpoint: checkpoint.is_some(),
            next_seq: checkpoint.map_or(0, |c| c.next_seq),
            next_tx: checkpoint.map_or(0, |c| c.next_tx),
            ..Replayed::default()
        },
        puts: HashMap::new(),
        takes: HashMap::new(),
        suspect: HashSet::new(),
    };
    let position = checkpoint.map_or(0, |c| c.position);
    let mut found_live = 0u64;
    let mut prev_end: Option<u64> = None;
    for seg in segments {
        let mut summary = SegmentSummary {
            start: seg.start,
            len: seg.data.len() as u64,
            max_seq: None,
            end: 0,
        };
        if let Some(pe) = prev_end {
            if pe != seg.start {
                st.issue(
                    &seg.name,
                    0,
                    0,
                    format!("gap in the log: previous segment ends at LSN {pe}, this one starts at {}; a segment file is missing", seg.start),
                );
            }
        }
        let framing = match segment::check_header(&seg.data) {
            Ok((start, framing)) => {
                if start != seg.start {
                    st.issue(
                        &seg.name,
                        0,
                        HEADER_LEN as u64,
                        format!("header says LSN {start}, file name says {}", seg.start),
                    );
                }
                framing
            }
            Err(e) => {
                st.issue(
                    &seg.name,
                    0,
                    seg.data.len() as u64,
                    format!("{e}; segment skipped"),
                );
                prev_end = None;
                st.out.segments.push(summary);
                continue;
            }
        };
        let mut scan = record::Scanner::new(&seg.data, HEADER_LEN, framing);
        for item in scan.by_ref() {
            match item {
                Item::Frame { offset, at, len } => {
                    let lsn = seg.start + offset as u64;
                    let rec = match record::decode(&seg.data, at, len) {
                        Ok(r) => r,
                        Err(e) => {
                            st.issue(
                                &seg.name,
                                offset as u64,
                                framing.frame_len(len) as u64,
                                format!("undecodable record ({e}); skipped"),
                            );
                            st.mark_suspect();
                            continue;
                        }
                    };
                    if let Record::Put { seq, .. } = &rec {
                        summary.max_seq = Some(summary.max_seq.map_or(*seq, |m| m.max(*seq)));
                    }
                    if lsn < position {
                        st.count(&rec);
                        if let Record::Put { seq, event, .. } = rec {
                            if checkpoint.is_some_and(|c| c.is_live(seq)) {
                                found_live += 1;
                                st.out.live.insert(seq, event);
                            }
                            st.out.next_seq = st.out.next_seq.max(seq.saturating_add(1));
                        }
                    } else {
                        st.apply(rec);
                    }
                }
                Item::Damaged {
                    offset,
                    len,
                    tail,
                    reason,
                } => {
                    let what = if tail {
                        format!("{reason}: damaged data up to the end of the segment; skipped")
                    } else {
                        format!("{reason}: damaged record skipped")
                    };
                    st.issue(&seg.name, offset as u64, len as u64, what);
                    st.mark_suspect();
                }
            }
        }
        summary.end = scan.end() as u64;
        prev_end = Some(seg.start + seg.data.len() as u64);
        st.out.segments.push(summary);
    }
    let mut out = st.finish();
    if let Some(c) = checkpoint {
        out.missing_live = c.live_count().saturating_sub(found_live);
        if out.missing_live > 0 {
            out.issues.push(Issue {
                segment: "checkpoint".into(),
                offset: c.position,
                len: 0,
                what: format!(
                    "{} events the checkpoint lists as live were not found in the segments (files missing or damaged)",
                    out.missing_live
                ),
            });
        }
    }
    out
}

struct State {
    out: Replayed,
    puts: HashMap<u64, Vec<(u64, Event)>>,
    takes: HashMap<u64, Vec<(u64, u32)>>,
    /// Put transactions that were open when damage was skipped.
    suspect: HashSet<u64>,
}

impl State {
    fn issue(&mut self, segment: &str, offset: u64, len: u64, what: String) {
        self.out.issues.push(Issue {
            segment: segment.to_string(),
            offset,
            len,
            what,
        });
    }

    fn mark_suspect(&mut self) {
        self.suspect.extend(self.puts.keys().copied());
    }

    fn count(&mut self, r: &Record) {
        let c = &mut self.out.counts;
        match r {
            Record::Pad => c.pads += 1,
            Record::Put { tx, .. } => {
                c.puts += 1;
                self.out.next_tx = self.out.next_tx.max(tx.saturating_add(1));
            }
            Record::Take { tx, .. } => {
                c.takes += 1;
                self.out.next_tx = self.out.next_tx.max(tx.saturating_add(1));
            }
            Record::Commit { tx } => {
                c.commits += 1;
                self.out.next_tx = self.out.next_tx.max(tx.saturating_add(1));
            }
            Record::Rollback { tx, .. } => {
                c.rollbacks += 1;
                self.out.next_tx = self.out.next_tx.max(tx.saturating_add(1));
            }
        }
    }

    fn apply(&mut self, r: Record) {
        self.count(&r);
        match r {
            Record::Pad => {}
            Record::Put { tx, seq, event } => {
                self.out.next_seq = self.out.next_seq.max(seq.saturating_add(1));
                self.puts.entry(tx).or_default().push((seq, event));
            }
            Record::Take { tx, runs } => self.takes.entry(tx).or_default().extend(runs),
            Record::Commit { tx } => {
                if let Some(evs) = self.puts.remove(&tx) {
                    for (seq, e) in evs {
                        self.out.live.insert(seq, e);
                    }
                }
                self.suspect.remove(&tx);
                if let Some(runs) = self.takes.remove(&tx) {
                    for (start, n) in runs {
                        self.out.live.remove_range(start, n);
                    }
                }
            }
            Record::Rollback { tx, first, count } => {
                self.puts.remove(&tx);
                self.takes.remove(&tx);
                self.suspect.remove(&tx);
                self.out.live.remove_range(first, count);
            }
        }
    }

    fn finish(mut self) -> Replayed {
        for (tx, evs) in self.puts.drain() {
            if self.suspect.contains(&tx) {
                self.out.recovered_events += evs.len() as u64;
                for (seq, e) in evs {
                    self.out.live.insert(seq, e);
                }
            } else {
                self.out.discarded_txs += 1;
                self.out.discarded_events += evs.len() as u64;
            }
        }
        self.out.discarded_txs += self.takes.len() as u64;
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::wal::record::{encode_put, encode_small, frame_len, put_payload_len};
    use crate::channel::wal::segment::encode_header;

    /// A segment at LSN 0 holding `records`, framed as the log writes them.
    fn segment(records: &[Record]) -> SegmentInput {
        let mut data = encode_header(0, 0).to_vec();
        for r in records {
            let lsn = data.len() as u64;
            match r {
                Record::Put { tx, seq, event } => {
                    let at = data.len();
                    data.resize(at + frame_len(put_payload_len(event)), 0);
                    encode_put(&mut data[at..], lsn, *tx, *seq, event);
                }
                r => data.extend_from_slice(&encode_small(r, lsn)),
            }
        }
        data.resize(data.len() + 256, 0);
        SegmentInput {
            start: 0,
            name: "seg".into(),
            data: Bytes::from(data),
        }
    }

    fn put(tx: u64, seq: u64, body: &'static str) -> Record {
        Record::Put {
            tx,
            seq,
            event: Event::new(Bytes::from_static(body.as_bytes())),
        }
    }

    #[test]
    fn uncommitted_and_rolled_back_transactions_are_not_live() {
        let seg = segment(&[
            put(1, 0, "a"),
            Record::Commit { tx: 1 },
            put(2, 1, "b"),
            Record::Commit { tx: 2 },
            Record::Rollback {
                tx: 2,
                first: 1,
                count: 1,
            },
            put(3, 2, "c"), // never committed
        ]);
        let r = replay(&[seg], None);
        assert_eq!(r.live.keys().collect::<Vec<_>>(), [0]);
        assert_eq!((r.discarded_txs, r.discarded_events), (1, 1));
        assert_eq!((r.next_seq, r.next_tx), (3, 4));
    }

    #[test]
    fn live_keeps_seq_order_through_removals_anywhere_and_late_inserts() {
        let ev = || Event::new(Bytes::from_static(b"x"));
        let mut l = Live::default();
        for s in 0..10 {
            l.insert(s, ev());
        }
        l.remove_range(4, 2); // behind the front: remembered
        l.remove_range(0, 2); // at the front: popped
        l.insert(3, ev()); // already there: replaced
        l.insert(20, ev());
        l.insert(15, ev()); // out of order: placed
        assert_eq!(l.keys().collect::<Vec<_>>(), [2, 3, 6, 7, 8, 9, 15, 20]);
        assert_eq!(l.len(), 8);
        // Covers the front and the remembered 4 and 5: nothing stale may stay counted.
        l.remove_range(2, 5);
        assert_eq!(l.keys().collect::<Vec<_>>(), [7, 8, 9, 15, 20]);
        assert_eq!(l.len(), 5);
        l.remove_range(8, 1);
        l.insert(4, ev());
        let q: Vec<u64> = l.into_queue().into_iter().map(|(s, _)| s).collect();
        assert_eq!(q, [4, 7, 9, 15, 20]);
    }

    /// Extreme ids in a well-formed log (what a fuzzer writes) must not overflow.
    #[test]
    fn maximal_seq_and_tx_do_not_overflow() {
        let seg = segment(&[
            put(u64::MAX, u64::MAX, "x"),
            Record::Commit { tx: u64::MAX },
            Record::Take {
                tx: 5,
                runs: vec![(u64::MAX, u32::MAX)],
            },
        ]);
        let r = replay(&[seg], None);
        assert_eq!(r.next_seq, u64::MAX);
        assert_eq!(r.live.len(), 1);
    }
}
