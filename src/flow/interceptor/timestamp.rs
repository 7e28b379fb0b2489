//! The timestamp interceptor (`timestamp`): sets a header to the time of interception in
//! epoch milliseconds, read once per batch.

use super::{set_header, Interceptor};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "headerName",
        KeyKind::Str,
        Some("timestamp"),
        "Header that receives the time in epoch milliseconds",
    ),
    KeySpec::new(
        "preserveExisting",
        KeyKind::Bool,
        Some("false"),
        "Keep a timestamp header that is already set",
    ),
];

#[derive(Debug, Clone)]
pub struct Timestamp {
    pub header: String,
    pub preserve_existing: bool,
}

impl Component for Timestamp {
    const TYPE: TypeInfo = TypeInfo {
        aliases: &["timestamp"],
        class: "org.apache.flume.interceptor.TimestampInterceptor$Builder",
        doc: "Sets a header to the time of interception in epoch milliseconds.",
        keys: KEYS,
    };
    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        Ok(Timestamp {
            header: k.str("headerName")?,
            preserve_existing: k.bool("preserveExisting")?,
        })
    }
}

impl Interceptor for Timestamp {
    fn apply(&self, events: &mut Vec<Event>, now_ms: u64) {
        set_header(
            events,
            &self.header,
            &now_ms.to_string(),
            self.preserve_existing,
        );
    }
}
