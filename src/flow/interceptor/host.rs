//! The host interceptor (`host`): sets a header to this agent's IP address or host name,
//! resolved once when the configuration loads.

use super::{set_header, Interceptor};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "hostHeader",
        KeyKind::Str,
        Some("host"),
        "Header that receives the host",
    ),
    KeySpec::new(
        "useIP",
        KeyKind::Bool,
        Some("true"),
        "Use the IP address (true) or the canonical host name (false)",
    ),
    KeySpec::new(
        "preserveExisting",
        KeyKind::Bool,
        Some("false"),
        "Keep a host header that is already set",
    ),
];

#[derive(Debug, Clone)]
pub struct Host {
    pub header: String,
    pub preserve_existing: bool,
    /// The value, resolved once at configuration time.
    pub value: String,
}

impl Component for Host {
    const TYPE: TypeInfo = TypeInfo {
        aliases: &["host"],
        class: "org.apache.flume.interceptor.HostInterceptor$Builder",
        doc: "Sets a header to this agent's host name or IP address.",
        keys: KEYS,
    };
    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let header = k.str("hostHeader")?;
        let use_ip = k.bool("useIP")?;
        Ok(Host {
            header,
            preserve_existing: k.bool("preserveExisting")?,
            // Java: getHostAddress(), or getCanonicalHostName() without useIP.
            value: if use_ip {
                crate::runtime::host::local_host(true)
            } else {
                crate::runtime::host::canonical_host_name()
            },
        })
    }
}

impl Interceptor for Host {
    fn apply(&self, events: &mut Vec<Event>, _: u64) {
        set_header(events, &self.header, &self.value, self.preserve_existing);
    }
}
