//! The static interceptor (`static`): sets a fixed header on every event.

use super::{set_header, Interceptor};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;

const KEYS: &[KeySpec] = &[
    KeySpec::new("key", KeyKind::Str, Some("key"), "Header name"),
    KeySpec::new("value", KeyKind::Str, Some("value"), "Header value"),
    KeySpec::new(
        "preserveExisting",
        KeyKind::Bool,
        Some("true"),
        "Keep the header when already set",
    ),
];

#[derive(Debug, Clone)]
pub struct Static {
    pub key: String,
    pub value: String,
    pub preserve_existing: bool,
}

impl Component for Static {
    const TYPE: TypeInfo = TypeInfo {
        aliases: &["static"],
        class: "org.apache.flume.interceptor.StaticInterceptor$Builder",
        doc: "Sets a fixed header on every event.",
        keys: KEYS,
    };
    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        Ok(Static {
            key: k.str("key")?,
            value: k.verbatim("value")?.unwrap_or_default(),
            preserve_existing: k.bool("preserveExisting")?,
        })
    }
}

impl Interceptor for Static {
    fn apply(&self, events: &mut Vec<Event>, _: u64) {
        set_header(events, &self.key, &self.value, self.preserve_existing);
    }
}
