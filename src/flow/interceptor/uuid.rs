//! The UUID interceptor (Flume's `org.apache.flume.sink.solr.morphline.UUIDInterceptor`,
//! shipped with the morphline Solr sink): sets a header to a random (version 4) UUID,
//! optionally prefixed, keeping one already there by default.

use super::Interceptor;
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use bytestring::ByteString;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "headerName",
        KeyKind::Str,
        Some("id"),
        "Header that receives the UUID",
    ),
    KeySpec::new(
        "preserveExisting",
        KeyKind::Bool,
        Some("true"),
        "Keep the header when already set",
    ),
    KeySpec::new(
        "prefix",
        KeyKind::Str,
        Some(""),
        "Text put before each UUID",
    ),
];

#[derive(Debug, Clone)]
pub struct Uuid {
    pub header: String,
    pub preserve_existing: bool,
    pub prefix: String,
}

impl Component for Uuid {
    const TYPE: TypeInfo = TypeInfo {
        // Flume has no short alias for it: configs name the class.
        aliases: &["uuid"],
        class: "org.apache.flume.sink.solr.morphline.UUIDInterceptor$Builder",
        doc: "Sets a header to a random UUID (Flume's morphline UUIDInterceptor).",
        keys: KEYS,
    };
    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        Ok(Uuid {
            header: k.str("headerName")?,
            preserve_existing: k.bool("preserveExisting")?,
            prefix: k.verbatim("prefix")?.unwrap_or_default(),
        })
    }
}

impl Interceptor for Uuid {
    fn apply(&self, events: &mut Vec<Event>, _: u64) {
        let name = ByteString::from(self.header.as_str());
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        // The randomness of the whole batch in one read from the kernel's CSPRNG (Java:
        // SecureRandom), not one system call per event.
        let mut random = vec![0u8; 16 * events.len()];
        fill_random(&mut random);
        for (e, bytes) in events.iter_mut().zip(random.chunks_exact(16)) {
            if self.preserve_existing && e.headers.get(&self.header).is_some() {
                continue;
            }
            let bytes: [u8; 16] = bytes.try_into().unwrap();
            let id = uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .hyphenated()
                .encode_lower(&mut buf);
            let mut value = String::with_capacity(self.prefix.len() + id.len());
            value.push_str(&self.prefix);
            value.push_str(id);
            e.headers.set(name.clone(), value);
        }
    }
}

/// Fills `buf` from getrandom(2), which blocks only before the kernel's pool is seeded at
/// boot; a short read (large buffers, signals) continues where it stopped.
fn fill_random(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most buf.len() - done bytes at buf[done..].
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n > 0 {
            done += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // No getrandom (pre-3.17 kernel): fall back to the uuid crate's source.
            for chunk in buf[done..].chunks_mut(16) {
                let n = chunk.len();
                chunk.copy_from_slice(&uuid::Uuid::new_v4().into_bytes()[..n]);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn sets_prefixed_v4_uuids_and_preserves_existing() {
        let i: Uuid = super::super::from_pairs(&[("prefix", "ev-")]).unwrap();
        assert_eq!((i.header.as_str(), i.preserve_existing), ("id", true));
        let mut evs = vec![Event::new(Bytes::new()), Event::new(Bytes::new())];
        evs[1].headers.set("id", "keep");
        i.apply(&mut evs, 0);
        let id = evs[0].headers.get("id").unwrap();
        let u = uuid::Uuid::parse_str(id.strip_prefix("ev-").unwrap()).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(evs[1].headers.get("id"), Some("keep"));
        let over: Uuid = super::super::from_pairs(&[("preserveExisting", "false")]).unwrap();
        over.apply(&mut evs, 0);
        assert_ne!(evs[1].headers.get("id"), Some("keep"));
        assert_ne!(evs[0].headers.get("id"), evs[1].headers.get("id"));
    }
}
