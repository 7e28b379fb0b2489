//! An event's body: bytes that usually share the buffer they arrived in.
//!
//! A `Bytes` slice counts its owners with an atomic. At a million events a second per
//! core, the atomic add when a batch is decoded and the atomic subtract when a sink drops
//! the event were a quarter of the agent's CPU (`perf`, S1 1x1000x100 B): on x86 each
//! locked instruction also waits for the core's store buffer to drain. Events never leave
//! the shard they arrived on (thread per core), so the events of one received buffer can
//! share it through an `Rc`: one atomic count per buffer, a plain one per event. `Rc` makes
//! `Event` neither `Send` nor `Sync`, and the compiler holds events to their thread.

use bytes::Bytes;
use std::fmt;
use std::ops::{Deref, Range};
use std::rc::Rc;

#[derive(Clone)]
pub struct Body(Repr);

#[derive(Clone)]
enum Repr {
    /// Owned, static, or a slice shared through `Bytes`'s own (atomic) count.
    Bytes(Bytes),
    /// `buf[start..end]`, where `buf` is shared with the other events cut from it.
    Shared {
        buf: Rc<Bytes>,
        start: usize,
        end: usize,
    },
}

impl Body {
    pub const fn new() -> Body {
        Body(Repr::Bytes(Bytes::new()))
    }

    pub const fn from_static(bytes: &'static [u8]) -> Body {
        Body(Repr::Bytes(Bytes::from_static(bytes)))
    }

    /// `buf[range]`, sharing `buf` with whoever else holds it.
    ///
    /// # Panics
    /// When `range` is not within `buf`.
    #[inline]
    pub fn shared(buf: Rc<Bytes>, range: Range<usize>) -> Body {
        assert!(
            range.start <= range.end && range.end <= buf.len(),
            "body range {range:?} outside a buffer of {} bytes",
            buf.len()
        );
        Body(Repr::Shared {
            buf,
            start: range.start,
            end: range.end,
        })
    }

    /// Whether both are slices of one shared buffer (what the decoders promise).
    #[cfg(test)]
    pub fn shares_buffer_with(&self, other: &Body) -> bool {
        match (&self.0, &other.0) {
            (Repr::Shared { buf: a, .. }, Repr::Shared { buf: b, .. }) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The body as `Bytes`, for code that needs that type; a shared body costs an
    /// atomic count here (not for the hot path).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Bytes(b) => b.clone(),
            Repr::Shared { buf, start, end } => buf.slice(*start..*end),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::new()
    }
}

impl Deref for Body {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Bytes(b) => b,
            Repr::Shared { buf, start, end } => &buf[*start..*end],
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body(Repr::Bytes(b))
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        **self == **other
    }
}

impl Eq for Body {}

impl PartialEq<Bytes> for Body {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}

/// As `Bytes` prints: `b"..."` with escapes.
impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_bytes(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_body_is_its_slice_of_the_buffer_and_keeps_it_alive() {
        let buf = Rc::new(Bytes::from_static(b"hello world"));
        let a = Body::shared(buf.clone(), 0..5);
        let b = Body::shared(buf.clone(), 6..11);
        drop(buf);
        assert_eq!(&*a, b"hello");
        assert_eq!(&*b.clone(), b"world");
        assert_eq!(b.to_bytes(), Bytes::from_static(b"world"));
        assert_eq!(a, Body::from_static(b"hello"));
        assert!(a.shares_buffer_with(&b));
        assert!(!a.shares_buffer_with(&Body::from_static(b"hello")));
        assert_eq!(format!("{b:?}"), "b\"world\"");
    }

    #[test]
    #[should_panic(expected = "outside a buffer of 5 bytes")]
    fn a_range_past_the_buffer_is_refused_when_the_body_is_made() {
        Body::shared(Rc::new(Bytes::from_static(b"short")), 2..6);
    }
}
