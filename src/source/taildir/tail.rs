//! One tailed file ([`TailFile`]: its inode, the path it was found under, its delivered
//! position and, while it is not idle, its open descriptor) and the cutting of its complete
//! lines from a position ([`Lines`]).
//!
//! Lines end at `\n`, and a `\r` just before it is removed, as in Flume's `TailFile`. A
//! last line without its `\n` yet is left for later (the position stays before it), except
//! when the caller asks for it (`partial`): Flume emits such a line when it closes an idle
//! file, and so does the source here. Unlike Flume, which holds any line whole, a line
//! longer than `max` bytes is cut into pieces of `max` bytes, so what a file without
//! newlines makes the source hold stays bounded.

use crate::event::Body;
use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::rc::Rc;

/// Bytes read from a file at a time (at least: a longer partial line reads as much more).
pub const CHUNK: usize = 64 * 1024;

/// A file the source follows, known by its inode.
#[derive(Debug)]
pub struct TailFile {
    pub inode: u64,
    /// Where the file was last seen matching its group (the `file` header, the position
    /// file's `file`).
    pub path: PathBuf,
    /// Index of its file group (for the group's headers).
    pub group: usize,
    /// Bytes delivered: the channels committed every line before this offset.
    pub pos: u64,
    /// Open while the file is active; `None` once closed as idle (reopened by path when it
    /// grows), so idle files hold no descriptor and no buffer.
    pub file: Option<File>,
    /// Milliseconds since the epoch of the last delivery from the file, or of its opening
    /// or closing (Flume's `lastUpdated`): idle after `idleTimeout` from it.
    pub last_updated: u64,
    /// When the file stopped matching under its name (renamed away or deleted): it is read
    /// on while it grows, then dropped once idle.
    pub gone_since: Option<u64>,
    /// Size and modification time (ms) at the last scan, to reopen a closed file only
    /// when it changed.
    pub stat: (u64, u64),
    /// Its creation time, where the file system records one: a new file that gets a
    /// freed inode has another, so it is not taken for the old one.
    pub born: Option<std::time::SystemTime>,
}

/// A complete line of a file, or a partial last one when asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Offset of the line's first byte in the file (Flume's `byteoffset` header).
    pub offset: u64,
    pub body: Body,
}

/// Cuts lines out of a file from a position, reading it in chunks that the lines' bodies
/// share (no copy per line).
pub struct Lines {
    /// Bytes of the file from offset `base`.
    data: Rc<Bytes>,
    base: u64,
    /// Index in `data` of the first byte not yet cut into a line.
    at: usize,
    /// The longest line; a longer one is cut into pieces this long.
    max: usize,
    /// Whether a line was cut (for the caller to say so).
    pub cut_long: bool,
}

impl Lines {
    pub fn new(pos: u64, max: usize) -> Lines {
        Lines {
            data: Rc::new(Bytes::new()),
            base: pos,
            at: 0,
            max: max.max(1),
            cut_long: false,
        }
    }

    /// The offset after the last line cut: where the next line starts.
    pub fn pos(&self) -> u64 {
        self.base + self.at as u64
    }

    /// Appends up to `max` lines to `out`, reading `file` as needed; fewer at the end of
    /// its data. With `partial`, bytes after the last `\n` at the end of the file are a
    /// line too (as they are, a `\r` included).
    pub fn read(
        &mut self,
        file: &File,
        max: usize,
        partial: bool,
        out: &mut Vec<Line>,
    ) -> io::Result<()> {
        while out.len() < max {
            if self.cut(max, out) {
                continue;
            }
            if !self.fill(file)? {
                if partial && self.at < self.data.len() {
                    out.push(Line {
                        offset: self.pos(),
                        body: Body::shared(self.data.clone(), self.at..self.data.len()),
                    });
                    self.at = self.data.len();
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// Cuts the complete lines in the buffer, up to `max` in `out`; whether it cut any.
    fn cut(&mut self, max: usize, out: &mut Vec<Line>) -> bool {
        let before = out.len();
        while out.len() < max {
            // A line of `self.max` bytes may be followed by `\r\n`: look that far.
            let window = (self.at + self.max + 2).min(self.data.len());
            let found = memchr::memchr(b'\n', &self.data[self.at..window]).map(|n| {
                let nl = self.at + n;
                let end = if nl > self.at && self.data[nl - 1] == b'\r' {
                    nl - 1
                } else {
                    nl
                };
                (end, nl + 1)
            });
            let (end, next) = match found {
                Some((end, next)) if end - self.at <= self.max => (end, next),
                // Longer than `max` (a `\n` after more, or none in a full window): cut.
                // With less than a full window there may be a `\r\n` still to read.
                Some(_) => self.cut_at_max(),
                None if window - self.at == self.max + 2 => self.cut_at_max(),
                None => break,
            };
            out.push(Line {
                offset: self.pos(),
                body: Body::shared(self.data.clone(), self.at..end),
            });
            self.at = next;
        }
        out.len() > before
    }

    /// The end of a piece of `max` bytes, and where the rest of its line starts.
    fn cut_at_max(&mut self) -> (usize, usize) {
        self.cut_long = true;
        (self.at + self.max, self.at + self.max)
    }

    /// Reads the file's next bytes after the buffer, keeping the uncut rest of the buffer
    /// in front of them; false at the end of the file.
    fn fill(&mut self, file: &File) -> io::Result<bool> {
        let rest = &self.data[self.at..];
        let want = CHUNK.max(rest.len());
        let mut buf = Vec::with_capacity(rest.len() + want);
        buf.extend_from_slice(rest);
        buf.resize(rest.len() + want, 0);
        let from = self.base + self.data.len() as u64;
        let n = loop {
            match file.read_at(&mut buf[rest.len()..], from) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        if n == 0 {
            return Ok(false);
        }
        buf.truncate(rest.len() + n);
        // Events share this buffer while they wait in a channel: a short read must not
        // keep a whole chunk alive for a few lines.
        if buf.len() < buf.capacity() / 2 {
            buf.shrink_to_fit();
        }
        self.base += self.at as u64;
        self.at = 0;
        self.data = Rc::new(Bytes::from(buf));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(content: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        t.write_all(content).unwrap();
        let f = File::open(t.path()).unwrap();
        (t, f)
    }

    fn texts(lines: &[Line]) -> Vec<(u64, String)> {
        lines
            .iter()
            .map(|l| (l.offset, String::from_utf8_lossy(&l.body.to_bytes()).into()))
            .collect()
    }

    #[test]
    fn cuts_lines_at_newline_removing_a_carriage_return_before_it() {
        let (_t, f) = file_with(b"a\r\nb\n\nc\rd\n\r\n\r\rx\r\n");
        let mut lines = Lines::new(0, 1 << 20);
        let mut out = Vec::new();
        lines.read(&f, 100, false, &mut out).unwrap();
        assert_eq!(
            texts(&out),
            [
                (0, "a".into()),
                (3, "b".into()),
                (5, "".into()),
                (6, "c\rd".into()),
                (10, "".into()),
                (12, "\r\rx".into()),
            ]
        );
        assert_eq!(lines.pos(), 17);
    }

    #[test]
    fn a_partial_last_line_waits_for_its_newline_unless_asked_for() {
        let (mut t, f) = file_with(b"one\ntwo\nthr");
        let mut lines = Lines::new(0, 1 << 20);
        let mut out = Vec::new();
        lines.read(&f, 100, false, &mut out).unwrap();
        assert_eq!(texts(&out), [(0, "one".into()), (4, "two".into())]);
        assert_eq!(lines.pos(), 8, "the position stays before the partial line");
        // The rest of the line arrives; reading on from the same reader, or from the
        // position by a new one, gives it whole.
        t.write_all(b"ee\r\nfour").unwrap();
        out.clear();
        lines.read(&f, 100, false, &mut out).unwrap();
        assert_eq!(texts(&out), [(8, "three".into())]);
        out.clear();
        Lines::new(8, 1 << 20)
            .read(&f, 100, false, &mut out)
            .unwrap();
        assert_eq!(texts(&out), [(8, "three".into())]);
        // Asked for (an idle file closing), the partial line comes as it is.
        out.clear();
        lines.read(&f, 100, true, &mut out).unwrap();
        assert_eq!(texts(&out), [(15, "four".into())]);
        assert_eq!(lines.pos(), 19);
    }

    #[test]
    fn stops_at_max_and_goes_on_from_there() {
        let (_t, f) = file_with(b"1\n2\n3\n4\n5\n");
        let mut lines = Lines::new(2, 1 << 20);
        let mut out = Vec::new();
        lines.read(&f, 2, false, &mut out).unwrap();
        assert_eq!(texts(&out), [(2, "2".into()), (4, "3".into())]);
        assert_eq!(lines.pos(), 6);
        out.clear();
        lines.read(&f, 2, false, &mut out).unwrap();
        assert_eq!(texts(&out), [(6, "4".into()), (8, "5".into())]);
        out.clear();
        lines.read(&f, 2, false, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(lines.pos(), 10);
    }

    #[test]
    fn a_line_longer_than_max_is_cut_into_pieces_of_max() {
        let (mut t, f) = file_with(b"0123456789abcdefghijXY\n12345\r\nabcde\r\n0123456");
        let mut lines = Lines::new(0, 5);
        let mut out = Vec::new();
        lines.read(&f, 100, false, &mut out).unwrap();
        assert!(lines.cut_long);
        assert_eq!(
            texts(&out),
            [
                (0, "01234".into()),
                (5, "56789".into()),
                (10, "abcde".into()),
                (15, "fghij".into()),
                (20, "XY".into()),
                // Exactly `max` bytes before `\r\n` is a whole line.
                (23, "12345".into()),
                (30, "abcde".into()),
                // An unfinished line is cut too once it is longer than `max`.
                (37, "01234".into()),
            ]
        );
        assert_eq!(lines.pos(), 42);
        t.write_all(b"\n").unwrap();
        out.clear();
        lines.read(&f, 100, false, &mut out).unwrap();
        assert_eq!(texts(&out), [(42, "56".into())]);
        // A line of exactly `max` whose `\r\n` is not all written yet waits for it.
        t.write_all(b"vwxyz\r").unwrap();
        out.clear();
        lines.read(&f, 100, false, &mut out).unwrap();
        assert!(out.is_empty());
        t.write_all(b"\n").unwrap();
        lines.read(&f, 100, false, &mut out).unwrap();
        assert_eq!(texts(&out), [(45, "vwxyz".into())]);
    }

    #[test]
    fn lines_longer_than_a_chunk_and_across_chunks_are_whole() {
        let long = "x".repeat(CHUNK * 2 + 17);
        let mut content = String::new();
        for i in 0..3000 {
            content.push_str(&format!("line {i}\r\n"));
        }
        content.push_str(&long);
        content.push('\n');
        content.push_str("end\n");
        let (_t, f) = file_with(content.as_bytes());
        let mut lines = Lines::new(0, 1 << 20);
        let mut out = Vec::new();
        lines.read(&f, usize::MAX, false, &mut out).unwrap();
        let got: Vec<String> = texts(&out).into_iter().map(|(_, s)| s).collect();
        let mut want: Vec<String> = (0..3000).map(|i| format!("line {i}")).collect();
        want.push(long);
        want.push("end".into());
        assert_eq!(got, want);
        assert_eq!(lines.pos(), content.len() as u64);
        // Offsets are where each line starts.
        let offsets: Vec<u64> = out.iter().map(|l| l.offset).collect();
        let mut at = 0u64;
        for (o, l) in offsets.iter().zip(content.split_inclusive('\n')) {
            assert_eq!(*o, at);
            at += l.len() as u64;
        }
    }
}
