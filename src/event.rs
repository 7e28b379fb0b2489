//! The event that flows through an agent: a small inline list of string headers and a
//! body that is usually a slice of the receive buffer it arrived in (see `body`).

mod body;

pub use body::Body;
use bytestring::ByteString;
use smallvec::SmallVec;
use std::fmt;

/// Headers are few per event in practice; two inline slots avoid a heap allocation for the
/// common cases (none, timestamp, timestamp + host) while keeping an event small enough to
/// move cheaply through channel queues. Order is insertion
/// order; `set` replaces in place, as a Java `Map.put` would.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(SmallVec<[(ByteString, ByteString); 2]>);

impl Headers {
    pub fn new() -> Self {
        Headers(SmallVec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }

    /// Sets `key` to `value`, replacing an existing value (Java `Map.put`).
    pub fn set(&mut self, key: impl Into<ByteString>, value: impl Into<ByteString>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Sets `key` only when it is absent (Flume's `preserveExisting`).
    pub fn set_if_absent(&mut self, key: impl Into<ByteString>, value: impl Into<ByteString>) {
        let key = key.into();
        if self.0.iter().all(|(k, _)| *k != key) {
            self.0.push((key, value.into()));
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<ByteString> {
        let pos = self.0.iter().position(|(k, _)| &**k == key)?;
        Some(self.0.remove(pos).1)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Bytes the headers take in a serialized form (keys + values); used for accounting.
    pub fn byte_len(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
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
    /// the 168-byte event on the stack and copies it in, which costs as much as decoding
    /// the event (measured by `benches/formats.rs`).
    #[inline]
    pub fn push_bodied(events: &mut Vec<Event>, body: Body) {
        events.reserve(1);
        let len = events.len();
        // SAFETY: `reserve(1)` made room for one more element at index `len`; both fields
        // are written before `set_len` makes the element visible.
        unsafe {
            let slot = events.as_mut_ptr().add(len);
            std::ptr::addr_of_mut!((*slot).body).write(body);
            std::ptr::addr_of_mut!((*slot).headers).write(Headers::new());
            events.set_len(len + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_stay_small() {
        // Events are moved through queues by value; the inline header slots dominate.
        assert!(
            std::mem::size_of::<Event>() <= 176,
            "{}",
            std::mem::size_of::<Event>()
        );
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
