//! The file channel's queue of committed, untaken events, in seq order (which is log
//! order). It holds no copy of a body and, for events put since the start, not even one
//! entry per event: a put batch is one `Run` of the put frames it wrote, laid end to end
//! in the log's mapping or in the memory they were written from (`direct`), and a take
//! decodes the frames at the front into events (bodies are slices of the frames). Headers
//! are decoded from the frames at take too, as slices of them: kept from the put, they
//! would hold on to the network buffer their event arrived in (an Avro event's headers
//! are a slice of it), and a backlog of events with headers would cost its whole size in
//! memory, not on disk. A million queued events of a thousand-event batches take a
//! thousand runs, not a million entries.

use super::record::{self, FRAME_HEADER, KIND_PUT};
use crate::event::{Body, Event, Headers};
use bytes::Bytes;
use bytestring::ByteString;
use std::collections::VecDeque;
use std::ops::Range;
use std::rc::Rc;

/// Consecutive seqs, one event each.
enum Run {
    /// `count` put frames laid end to end in `frames` from `off`, seqs `seq..`.
    Frames {
        seq: u64,
        count: u32,
        off: u32,
        frames: Bytes,
    },
    /// One event whose frame is not known (replayed at start, or an empty body).
    One {
        seq: u64,
        body: Body,
        headers: Option<Box<Headers>>,
    },
}

impl Run {
    fn seq(&self) -> u64 {
        match self {
            Run::Frames { seq, .. } | Run::One { seq, .. } => *seq,
        }
    }

    fn len(&self) -> usize {
        match self {
            Run::Frames { count, .. } => *count as usize,
            Run::One { .. } => 1,
        }
    }

    /// The first byte of the log the front event occupies.
    fn front_ptr(&self) -> Option<*const u8> {
        match self {
            Run::Frames { off, frames, .. } => Some(frames[*off as usize..].as_ptr()),
            Run::One { body, .. } => (!body.is_empty()).then(|| body.as_ptr()),
        }
    }
}

const _: () = assert!(std::mem::size_of::<Run>() <= 56);

/// The frames a take removed from one run, to put back on rollback.
pub struct Taken {
    seq: u64,
    count: u32,
    off: u32,
    frames: Option<Bytes>,
}

/// A put batch's frames in one segment: `count` frames from the start of `frames`, for the
/// batch's events `first..first + count`.
pub struct Span {
    pub frames: Bytes,
    pub first: usize,
    pub count: usize,
}

#[derive(Default)]
pub struct Queue {
    runs: VecDeque<Run>,
    len: usize,
}

/// The put frame at `off` of `frames`: (seq, header count, where the headers start, body,
/// next frame's offset).
fn frame_at(frames: &Bytes, off: usize) -> (u64, usize, usize, Range<usize>, usize) {
    let word = |at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&frames[at..at + n]);
        u64::from_le_bytes(b)
    };
    let len = word(off, 4) as usize;
    let payload = off + FRAME_HEADER;
    debug_assert_eq!(frames[payload], KIND_PUT);
    let seq = word(payload + 9, 8);
    let nh = word(payload + 17, 2) as usize;
    let mut at = payload + 19;
    for _ in 0..nh {
        at += 8 + word(at, 4) as usize + word(at + 4, 4) as usize;
    }
    let end = payload + len;
    (seq, nh, payload + 19, at..end, off + record::frame_len(len))
}

/// The `n` headers a put frame records from `at`, as slices of `frames`. The log holds
/// what this process wrote from valid headers; text that is not UTF-8 all the same (the
/// file changed under us) is replaced rather than trusted.
fn headers_at(frames: &Bytes, mut at: usize, n: usize) -> Headers {
    let word = |at: usize| u32::from_le_bytes(frames[at..at + 4].try_into().unwrap()) as usize;
    let text = |r: Range<usize>| {
        ByteString::try_from(frames.slice(r.clone()))
            .unwrap_or_else(|_| String::from_utf8_lossy(&frames[r]).into_owned().into())
    };
    let mut h = Headers::new();
    for _ in 0..n {
        let (kl, vl) = (word(at), word(at + 4));
        let k = at + 8;
        h.set(text(k..k + kl), text(k + kl..k + kl + vl));
        at = k + kl + vl;
    }
    h
}

impl Queue {
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(test)]
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Inserts a run where its seqs belong (nearly always the back).
    fn insert(&mut self, run: Run) {
        self.len += run.len();
        let seq = run.seq();
        if self.runs.back().is_none_or(|r| r.seq() < seq) {
            self.runs.push_back(run);
        } else {
            let at = self.runs.partition_point(|r| r.seq() < seq);
            self.runs.insert(at, run);
        }
    }

    /// Queues a put batch: `events` are seqs `first..`, their frames in `spans`, which
    /// cover the batch in order (one span per segment it was written into).
    pub fn push_batch(&mut self, first: u64, events: Vec<Event>, spans: Vec<Span>) {
        let total = events.len();
        let mut events = events.into_iter();
        let mut covered = 0;
        for s in spans {
            debug_assert_eq!(s.first, covered, "spans cover the batch in order");
            // The log holds the events now; a take decodes them from it.
            events.by_ref().take(s.count).for_each(drop);
            self.insert(Run::Frames {
                seq: first + s.first as u64,
                count: s.count as u32,
                off: 0,
                frames: s.frames,
            });
            covered += s.count;
        }
        debug_assert_eq!(covered, total, "spans cover the whole batch");
    }

    /// Queues one event whose frame is not known.
    pub fn push_one(&mut self, seq: u64, e: Event) {
        self.insert(Run::One {
            seq,
            headers: (!e.headers.is_empty()).then(|| Box::new(e.headers)),
            body: e.body,
        });
    }

    /// Removes up to `n` events from the front: the events with their seqs, and what to
    /// hand back to `put_back` should their take roll back.
    pub fn take(&mut self, n: usize) -> (Vec<u64>, Vec<Event>, Vec<Taken>) {
        let n = n.min(self.len);
        let mut seqs = Vec::with_capacity(n);
        let mut events = Vec::with_capacity(n);
        let mut taken = Vec::new();
        while events.len() < n {
            let want = n - events.len();
            let Some(run) = self.runs.front_mut() else {
                break;
            };
            match run {
                Run::One { .. } => {
                    let Some(Run::One { seq, body, headers }) = self.runs.pop_front() else {
                        unreachable!()
                    };
                    seqs.push(seq);
                    events.push(Event::with_headers(
                        headers.map(|h| *h).unwrap_or_default(),
                        body,
                    ));
                    taken.push(Taken {
                        seq,
                        count: 1,
                        off: 0,
                        frames: None,
                    });
                    self.len -= 1;
                }
                Run::Frames {
                    seq,
                    count,
                    off,
                    frames,
                } => {
                    let k = want.min(*count as usize);
                    taken.push(Taken {
                        seq: *seq,
                        count: k as u32,
                        off: *off,
                        frames: Some(frames.clone()),
                    });
                    let mut at = *off as usize;
                    // The bodies share the frames without an atomic count each.
                    let buf = Rc::new(frames.clone());
                    for i in 0..k as u64 {
                        let (s, nh, headers, body, next) = frame_at(frames, at);
                        let body = Body::shared(buf.clone(), body);
                        debug_assert_eq!(s, *seq + i);
                        let h = match nh {
                            0 => Headers::new(),
                            n => headers_at(frames, headers, n),
                        };
                        seqs.push(s);
                        events.push(Event::with_headers(h, body));
                        // The log's pages were last written by the kernel's copy and
                        // are out of this core's cache: start loading the header of
                        // the frame four ahead, frames of a batch being alike in size.
                        crate::hint::prefetch(frames, next + 4 * (next - at));
                        at = next;
                    }
                    self.len -= k;
                    if k == *count as usize {
                        self.runs.pop_front();
                    } else {
                        *seq += k as u64;
                        *count -= k as u32;
                        *off = at as u32;
                    }
                }
            }
        }
        (seqs, events, taken)
    }

    /// Puts a rolled-back take's events back where their seqs belong, as the runs they
    /// were taken from.
    pub fn put_back(&mut self, taken: Vec<Taken>, events: Vec<Event>) {
        let mut events = events.into_iter();
        // Back to front, so each run lands in front of the ones put back after it.
        let mut runs = Vec::with_capacity(taken.len());
        for t in taken {
            let batch: Vec<Event> = events.by_ref().take(t.count as usize).collect();
            match t.frames {
                None => {
                    for (i, e) in batch.into_iter().enumerate() {
                        runs.push(Run::One {
                            seq: t.seq + i as u64,
                            headers: (!e.headers.is_empty()).then(|| Box::new(e.headers)),
                            body: e.body,
                        });
                    }
                }
                Some(frames) => {
                    // The frames still hold the events; the next take decodes them again.
                    drop(batch);
                    runs.push(Run::Frames {
                        seq: t.seq,
                        count: t.count,
                        off: t.off,
                        frames,
                    });
                }
            }
        }
        for run in runs.into_iter().rev() {
            if self.runs.front().is_none_or(|r| r.seq() > run.seq()) {
                self.len += run.len();
                self.runs.push_front(run);
            } else {
                self.insert(run);
            }
        }
    }

    /// The first log byte of the oldest queued event that has one.
    pub fn front_ptr(&self) -> Option<*const u8> {
        self.runs.iter().take(16).find_map(Run::front_ptr)
    }

    /// Every queued seq, in order, as runs of consecutive seqs `(first, count)`: one per
    /// put batch, not one per event.
    pub fn seq_runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|r| (r.seq(), r.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames for `bodies` as the log lays them out, with their seqs from `first`.
    fn framed(first: u64, events: &[Event]) -> Bytes {
        let mut buf = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let at = buf.len();
            buf.resize(at + record::frame_len(record::put_payload_len(e)), 0);
            record::encode_put(&mut buf[at..], at as u64, 7, first + i as u64, e);
        }
        Bytes::from(buf)
    }

    fn ev(body: &str, header: Option<&str>) -> Event {
        let mut e = Event::new(Bytes::copy_from_slice(body.as_bytes()));
        if let Some(v) = header {
            e.headers.set("k", v.to_string());
        }
        e
    }

    fn batch(q: &mut Queue, first: u64, evs: Vec<Event>) {
        let frames = framed(first, &evs);
        let n = evs.len();
        q.push_batch(
            first,
            evs,
            vec![Span {
                frames,
                first: 0,
                count: n,
            }],
        );
    }

    fn bodies(evs: &[Event]) -> Vec<String> {
        evs.iter()
            .map(|e| String::from_utf8(e.body.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn takes_decode_frames_across_runs_and_keep_headers() {
        let mut q = Queue::default();
        batch(
            &mut q,
            0,
            vec![ev("a", None), ev("b", Some("1")), ev("", None)],
        );
        batch(&mut q, 3, vec![ev("d", Some("2")), ev("e", None)]);
        assert_eq!((q.len(), q.runs()), (5, 2));
        let (seqs, evs, _) = q.take(4);
        assert_eq!(seqs, [0, 1, 2, 3]);
        assert_eq!(bodies(&evs), ["a", "b", "", "d"]);
        assert!(evs[0].headers.is_empty());
        assert_eq!(evs[1].headers.get("k"), Some("1"));
        assert_eq!(evs[3].headers.get("k"), Some("2"));
        let (seqs, evs, _) = q.take(10);
        assert_eq!(seqs, [4]);
        assert_eq!(bodies(&evs), ["e"]);
        assert!(q.is_empty() && q.runs() == 0);
    }

    #[test]
    fn queued_events_do_not_hold_the_buffer_their_headers_arrived_in() {
        // Headers as an Avro source decodes them: a slice of the receive buffer.
        let map = b"\x04\x02a\x021\x02b\x022\x00";
        let received = Rc::new(Bytes::from_static(map));
        let headers = Headers::received(received.clone(), 0..map.len()).unwrap();
        let e = Event::with_headers(headers, Bytes::from_static(b"body"));
        let mut q = Queue::default();
        batch(&mut q, 0, vec![e.clone(), ev("x", None)]);
        drop(e);
        assert_eq!(
            Rc::strong_count(&received),
            1,
            "the queue let the buffer go"
        );
        let (_, evs, taken) = q.take(2);
        assert_eq!(evs[0].headers.to_string(), "{a=1, b=2}");
        assert!(evs[1].headers.is_empty());
        q.put_back(taken, evs);
        let (_, evs, _) = q.take(2);
        assert_eq!(evs[0].headers.to_string(), "{a=1, b=2}");
        assert_eq!(bodies(&evs), ["body", "x"]);
    }

    #[test]
    fn a_rolled_back_take_comes_back_in_order_with_its_headers() {
        let mut q = Queue::default();
        batch(
            &mut q,
            0,
            vec![ev("a", Some("x")), ev("b", None), ev("c", Some("y"))],
        );
        batch(&mut q, 3, vec![ev("d", None)]);
        let (_, evs, taken) = q.take(2);
        let (_, evs2, taken2) = q.take(1);
        // The later take rolls back first, then the earlier one.
        q.put_back(taken2, evs2);
        q.put_back(taken, evs);
        assert_eq!(q.len(), 4);
        let (seqs, evs, _) = q.take(4);
        assert_eq!(seqs, [0, 1, 2, 3]);
        assert_eq!(bodies(&evs), ["a", "b", "c", "d"]);
        assert_eq!(evs[0].headers.get("k"), Some("x"));
        assert!(evs[1].headers.is_empty());
        assert_eq!(evs[2].headers.get("k"), Some("y"));
    }

    #[test]
    fn a_batch_published_late_goes_before_later_seqs() {
        let mut q = Queue::default();
        batch(&mut q, 5, vec![ev("f", None)]);
        batch(&mut q, 0, vec![ev("a", None), ev("b", None)]);
        q.push_one(3, ev("d", Some("z")));
        let seqs: Vec<u64> = q.seq_runs().flat_map(|(s, n)| s..s + n).collect();
        assert_eq!(seqs, [0, 1, 3, 5]);
        let (seqs, evs, _) = q.take(4);
        assert_eq!(seqs, [0, 1, 3, 5]);
        assert_eq!(bodies(&evs), ["a", "b", "d", "f"]);
        assert_eq!(evs[2].headers.get("k"), Some("z"));
    }

    #[test]
    fn the_front_pointer_is_the_front_frame() {
        let mut q = Queue::default();
        assert!(q.front_ptr().is_none());
        let evs = vec![ev("a", None), ev("b", None)];
        let frames = framed(0, &evs);
        let base = frames.as_ptr();
        q.push_batch(
            0,
            evs,
            vec![Span {
                frames: frames.clone(),
                first: 0,
                count: 2,
            }],
        );
        assert_eq!(q.front_ptr(), Some(base));
        q.take(1);
        let second = record::frame_len(record::put_payload_len(&ev("a", None)));
        assert_eq!(q.front_ptr(), Some(base.wrapping_add(second)));
    }
}
