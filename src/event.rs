//! The event that flows through an agent: string headers, kept as received when an event
//! arrives in Avro, and a body that is usually a slice of the receive buffer it arrived
//! in (see `body`).

mod body;

use crate::avro_slice::MapPairs;
pub use body::Body;
use bytes::Bytes;
use bytestring::ByteString;
use std::fmt;
use std::rc::Rc;
use thin_vec::ThinVec;

/// An event's headers, in one of two forms:
///
/// - **as received**: the Avro `map<string>` bytes of an event decoded from an Avro frame,
///   a range of the frame's buffer shared like the event's body (see `body`). Decoding
///   checks them once (lengths, UTF-8, no repeated name) and keeps them as they are: no
///   string is cut out, counted or allocated per header, and a sink that sends the event
///   on in Avro copies the bytes unchanged. Reading a name walks the few bytes.
/// - **owned**: a list of names and values, which every change turns headers into.
///
/// Either form is 24 bytes, so an event (body and headers) is 56: events are moved by
/// value through decode vectors and channel queues, and with two inline header pairs (136
/// bytes) an event was 168 bytes, more than the 100-byte body it points to. Order is
/// insertion order (arrival order for headers as received); `set` replaces in place, as a
/// Java `Map.put` would.
#[derive(Clone)]
pub struct Headers(Repr);

#[derive(Clone)]
enum Repr {
    Owned(ThinVec<(ByteString, ByteString)>),
    /// `buf[start..end]`: a whole Avro map, from its first block count to its closing 0,
    /// whose names and values are valid UTF-8 and whose names are all different.
    Received {
        buf: Rc<Bytes>,
        start: u32,
        end: u32,
    },
}

impl Default for Headers {
    fn default() -> Self {
        Headers::new()
    }
}

impl Headers {
    pub const fn new() -> Self {
        Headers(Repr::Owned(ThinVec::new()))
    }

    /// Headers as received: `buf[range]` must be an Avro `map<string>` checked as
    /// `Repr::Received` describes (the Avro decoder's job); `None` when the range does not
    /// fit the compact form, and the caller decodes them into owned headers instead.
    pub(crate) fn received(buf: Rc<Bytes>, range: std::ops::Range<usize>) -> Option<Headers> {
        let start = u32::try_from(range.start).ok()?;
        let end = u32::try_from(range.end).ok()?;
        debug_assert!(range.end <= buf.len() && start < end);
        Some(Headers(Repr::Received { buf, start, end }))
    }

    /// The Avro encoding of headers as received (ending with the map's closing 0), to be
    /// sent on unchanged.
    pub fn as_avro(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Received { buf, start, end } => Some(&buf[*start as usize..*end as usize]),
            Repr::Owned(_) => None,
        }
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Owned(v) => v.len(),
            Repr::Received { .. } => self.iter().count(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Owned(v) => v.is_empty(),
            // Only a map with at least one pair is kept as received.
            Repr::Received { .. } => false,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The owned form, converting headers as received first.
    fn owned(&mut self) -> &mut ThinVec<(ByteString, ByteString)> {
        if let Repr::Received { buf, start, end } = &self.0 {
            let mut v = ThinVec::new();
            let text = |r| ByteString::try_from(buf.slice(r)).unwrap_or_default();
            for (k, v_range) in MapPairs::new(&buf[..*end as usize], *start as usize) {
                v.push((text(k), text(v_range)));
            }
            self.0 = Repr::Owned(v);
        }
        match &mut self.0 {
            Repr::Owned(v) => v,
            Repr::Received { .. } => unreachable!("converted above"),
        }
    }

    /// Sets `key` to `value`, replacing an existing value (Java `Map.put`).
    pub fn set(&mut self, key: impl Into<ByteString>, value: impl Into<ByteString>) {
        let key = key.into();
        let value = value.into();
        let v = self.owned();
        match v.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => v.push((key, value)),
        }
    }

    /// Sets `key` only when it is absent (Flume's `preserveExisting`).
    pub fn set_if_absent(&mut self, key: impl Into<ByteString>, value: impl Into<ByteString>) {
        let key = key.into();
        if self.get(&key).is_none() {
            self.owned().push((key, value.into()));
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<ByteString> {
        self.get(key)?;
        let v = self.owned();
        let pos = v.iter().position(|(k, _)| &**k == key)?;
        Some(v.remove(pos).1)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.owned().retain(|(k, v)| keep(k, v));
    }

    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Owned(v) => Iter::Owned(v.iter()),
            Repr::Received { buf, start, end } => {
                Iter::Received(MapPairs::new(&buf[..*end as usize], *start as usize))
            }
        }
    }

    /// Bytes the headers take in a serialized form (keys + values); used for accounting.
    pub fn byte_len(&self) -> usize {
        self.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

/// The name and value of each header, in order.
pub enum Iter<'a> {
    Owned(std::slice::Iter<'a, (ByteString, ByteString)>),
    Received(MapPairs<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        match self {
            Iter::Owned(it) => it.next().map(|(k, v)| (&**k, &**v)),
            Iter::Received(pairs) => {
                let (k, v) = pairs.next()?;
                let buf = pairs.buf();
                Some((received_str(&buf[k]), received_str(&buf[v])))
            }
        }
    }
}

/// Text the Avro decoder checked before keeping headers as received; a failure here
/// would be a bug in that check, and yields "" rather than undefined behaviour.
fn received_str(b: &[u8]) -> &str {
    debug_assert!(std::str::from_utf8(b).is_ok());
    std::str::from_utf8(b).unwrap_or_default()
}

/// Java's `Map.toString()` form, `{k1=v1, k2=v2}`, which Flume's logger sink prints.
impl fmt::Display for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<K: Into<ByteString>, V: Into<ByteString>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut h = Headers::new();
        for (k, v) in iter {
            h.set(k, v);
        }
        h
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub headers: Headers,
    pub body: Body,
}

impl Event {
    pub fn new(body: impl Into<Body>) -> Self {
        Event {
            headers: Headers::new(),
            body: body.into(),
        }
    }

    pub fn with_headers(headers: Headers, body: impl Into<Body>) -> Self {
        Event {
            headers,
            body: body.into(),
        }
    }

    /// Appends `Event::new(body)` to `events`. Writes the two fields in place: `push` builds
    /// the event on the stack and copies it in, which costs as much as decoding
    /// the event (measured by `benches/formats.rs`).
    #[inline]
    pub fn push_bodied(events: &mut Vec<Event>, body: Body) {
        Event::push_bodied_with(events, || body);
    }

    /// As `push_bodied`, with the body made once there is room: a body made before
    /// `reserve` waits on the stack, and copying it into the vector from there read the
    /// stack before its stores had landed (half the time of decoding a 100-byte event,
    /// by `perf annotate`).
    #[inline(always)]
    pub fn push_bodied_with(events: &mut Vec<Event>, body: impl FnOnce() -> Body) {
        Event::push_with(events, Headers::new, body);
    }

    /// Appends an event with these headers and body, each made once there is room (see
    /// `push_bodied_with`).
    #[inline(always)]
    pub fn push_with(
        events: &mut Vec<Event>,
        headers: impl FnOnce() -> Headers,
        body: impl FnOnce() -> Body,
    ) {
        events.reserve(1);
        let len = events.len();
        // SAFETY: `reserve(1)` made room for one more element at index `len`; both fields
        // are written before `set_len` makes the element visible.
        unsafe {
            let slot = events.as_mut_ptr().add(len);
            std::ptr::addr_of_mut!((*slot).body).write(body());
            std::ptr::addr_of_mut!((*slot).headers).write(headers());
            events.set_len(len + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_stay_small() {
        // Events are moved through queues by value.
        assert!(
            std::mem::size_of::<Event>() <= 56,
            "{}",
            std::mem::size_of::<Event>()
        );
    }

    /// `{a=1, b=2, c=3}` as a peer may send it: a block of one pair given with its byte
    /// size, then a block of two.
    fn received_abc() -> Headers {
        let map = b"\x01\x08\x02a\x021\x04\x02b\x022\x02c\x023\x00";
        let mut buf = b"xx".to_vec();
        buf.extend_from_slice(map);
        buf.extend_from_slice(b"yy");
        Headers::received(Rc::new(Bytes::from(buf)), 2..2 + map.len()).unwrap()
    }

    #[test]
    fn headers_as_received_read_like_owned_ones() {
        let h = received_abc();
        let owned: Headers = [("a", "1"), ("b", "2"), ("c", "3")].into_iter().collect();
        assert_eq!(h, owned);
        assert_eq!(owned, h);
        assert_eq!(h.len(), 3);
        assert!(!h.is_empty());
        assert_eq!(h.byte_len(), 6);
        assert_eq!((h.get("b"), h.get("d")), (Some("2"), None));
        assert_eq!(h.to_string(), "{a=1, b=2, c=3}");
        assert_eq!(h.as_avro().map(<[u8]>::len), Some(16));
        assert_ne!(
            h,
            [("a", "1"), ("c", "3"), ("b", "2")].into_iter().collect()
        );
    }

    #[test]
    fn changing_headers_as_received_makes_them_owned_in_the_same_order() {
        let mut h = received_abc();
        h.set_if_absent("a", "x");
        assert!(h.as_avro().is_some(), "nothing changed, nothing converted");
        h.set("b", "20");
        assert!(h.as_avro().is_none());
        assert_eq!(h.to_string(), "{a=1, b=20, c=3}");

        let mut h = received_abc();
        assert_eq!(h.remove("d"), None);
        assert!(h.as_avro().is_some());
        assert_eq!(h.remove("a").as_deref(), Some("1"));
        assert_eq!(h.to_string(), "{b=2, c=3}");

        let mut h = received_abc();
        h.retain(|k, _| k != "b");
        assert_eq!(h.to_string(), "{a=1, c=3}");

        let mut h = received_abc();
        h.set_if_absent("d", "4");
        assert_eq!(h.to_string(), "{a=1, b=2, c=3, d=4}");
    }

    #[test]
    fn set_replaces_and_keeps_order() {
        let mut h = Headers::new();
        h.set("a", "1");
        h.set("b", "2");
        h.set("a", "3");
        assert_eq!(h.to_string(), "{a=3, b=2}");
        h.set_if_absent("b", "x");
        h.set_if_absent("c", "4");
        assert_eq!(h.to_string(), "{a=3, b=2, c=4}");
        assert_eq!(h.remove("b").as_deref(), Some("2"));
        assert_eq!(h.get("c"), Some("4"));
        assert_eq!(h.len(), 2);
    }
}
