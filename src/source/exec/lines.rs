//! The exec source's line splitter, Java's `BufferedReader.readLine` over a stream of
//! reads, with a bound on what an unfinished line may hold.

use crate::event::{Body, Event};
use bytes::{Bytes, BytesMut};
use std::rc::Rc;

/// Cuts a byte stream into lines as Java's `BufferedReader.readLine` does (ended by `\n`,
/// `\r` or `\r\n`, also across reads), each at most `max` bytes. Lines that lie whole in
/// one read are slices of it; only a line split over reads is copied.
pub struct Lines {
    max: usize,
    /// The start of a line whose end has not been read yet.
    partial: BytesMut,
    /// The last read ended with `\r`: a `\n` first in the next one ends nothing.
    after_cr: bool,
    /// A line was cut at `max` (logged once).
    cut: bool,
}

impl Lines {
    pub fn new(max: usize) -> Lines {
        Lines {
            max,
            partial: BytesMut::new(),
            after_cr: false,
            cut: false,
        }
    }

    /// The lines that `chunk` ends (with what earlier chunks began of the first).
    pub fn split(&mut self, chunk: Bytes) -> Vec<Event> {
        let shared = Rc::new(chunk);
        let chunk = &shared[..];
        let mut out = Vec::new();
        let mut start = 0;
        if self.after_cr && chunk.first() == Some(&b'\n') {
            start = 1;
        }
        self.after_cr = false;
        for end in memchr::memchr2_iter(b'\n', b'\r', chunk) {
            if end < start {
                continue; // the \n of a \r\n
            }
            self.line(&shared, start..end, &mut out);
            start = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(end + 1) {
                    Some(b'\n') => start = end + 2,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        if start < chunk.len() {
            self.partial.extend_from_slice(&chunk[start..]);
            while self.partial.len() > self.max {
                let head = self.partial.split_to(self.max).freeze();
                self.note_cut();
                out.push(Event::new(head));
            }
        }
        out
    }

    /// The line `range` of `shared`, after what `partial` holds of it.
    fn line(&mut self, shared: &Rc<Bytes>, range: std::ops::Range<usize>, out: &mut Vec<Event>) {
        if self.partial.is_empty() {
            let mut at = range.start;
            while range.end - at > self.max {
                self.note_cut();
                out.push(Event::new(Body::shared(shared.clone(), at..at + self.max)));
                at += self.max;
            }
            out.push(Event::new(Body::shared(shared.clone(), at..range.end)));
            return;
        }
        self.partial.extend_from_slice(&shared[range]);
        while self.partial.len() > self.max {
            let head = self.partial.split_to(self.max).freeze();
            self.note_cut();
            out.push(Event::new(head));
        }
        out.push(Event::new(self.partial.split().freeze()));
    }

    /// The last line, which had no ending.
    pub fn finish(&mut self) -> Vec<Event> {
        if self.partial.is_empty() {
            return Vec::new();
        }
        vec![Event::new(self.partial.split().freeze())]
    }

    /// Bytes of an unfinished line held (at most `max`).
    pub fn held(&self) -> usize {
        self.partial.len()
    }

    fn note_cut(&mut self) {
        if !self.cut {
            self.cut = true;
            tracing::warn!(
                "a line of the command's output is longer than max-line-length ({} bytes); it is cut into events of that size",
                self.max
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect()
    }

    fn split_all(max: usize, chunks: &[&str]) -> Vec<String> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(bodies(&lines.split(Bytes::copy_from_slice(c.as_bytes()))));
        }
        out.extend(bodies(&lines.finish()));
        out
    }

    #[test]
    fn lines_end_as_javas_read_line_ends_them() {
        assert_eq!(split_all(100, &["a\nb\r\nc\rd"]), ["a", "b", "c", "d"]);
        assert_eq!(split_all(100, &["\n\n"]), ["", ""]);
        assert_eq!(split_all(100, &["\r\r\n"]), ["", ""]);
    }

    #[test]
    fn an_ending_split_over_reads_ends_one_line() {
        assert_eq!(split_all(100, &["a\r", "\nb\n"]), ["a", "b"]);
        assert_eq!(split_all(100, &["a\r", "b\n"]), ["a", "b"]);
        assert_eq!(split_all(100, &["a\r", "\r\n"]), ["a", ""]);
        assert_eq!(split_all(100, &["ab", "c", "d\ne"]), ["abcd", "e"]);
    }

    #[test]
    fn a_line_longer_than_the_maximum_is_cut_not_buffered_whole() {
        assert_eq!(split_all(3, &["abcdefg\n"]), ["abc", "def", "g"]);
        assert_eq!(split_all(3, &["ab", "cdefg", "h\n"]), ["abc", "def", "gh"]);
        let mut lines = Lines::new(4);
        lines.split(Bytes::from_static(b"0123456789"));
        assert!(lines.held() <= 4, "held {}", lines.held());
    }
}
