//! The sender's headers (`clientIPHeader`, `clientHostnameHeader`): the peer's IP address
//! as text and its reverse-DNS name, looked up once per connection (TCP) or once per
//! sender (UDP, cached), never per event, off the shard's loop and with a bounded wait.

use crate::event::Event;
use bytestring::ByteString;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The longest a reverse lookup may take; then the IP address stands in for the name, as
/// Java's `getHostName` gives the address text when there is no name.
const LOOKUP_WAIT: Duration = Duration::from_secs(2);

/// The header names a source was configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub ip: Option<String>,
    pub hostname: Option<String>,
}

impl Names {
    pub fn is_empty(&self) -> bool {
        self.ip.is_none() && self.hostname.is_none()
    }

    /// The headers for a sender at `ip` (the name looked up only when it is wanted).
    pub async fn resolve(&self, ip: IpAddr) -> Fixed {
        let mut fixed = Fixed::default();
        if let Some(h) = &self.ip {
            fixed.push(h, ip.to_string());
        }
        if let Some(h) = &self.hostname {
            let name = tokio::time::timeout(LOOKUP_WAIT, crate::source::avro::reverse_lookup(ip))
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| ip.to_string());
            fixed.push(h, name);
        }
        fixed
    }
}

/// Headers every event of a connection gets (values shared, not copied, per event).
#[derive(Debug, Clone, Default)]
pub struct Fixed(Vec<(ByteString, ByteString)>);

impl Fixed {
    pub fn push(&mut self, key: &str, value: String) {
        self.0
            .push((ByteString::from(key), ByteString::from(value)));
    }

    pub fn apply(&self, events: &mut [Event]) {
        if self.0.is_empty() {
            return;
        }
        for e in events {
            for (k, v) in &self.0 {
                e.headers.set(k.clone(), v.clone());
            }
        }
    }
}

/// A UDP source's senders' headers, by address; cleared when it grows past its bound so
/// a spray of spoofed senders cannot grow it without limit.
#[derive(Default)]
pub struct Cache(HashMap<IpAddr, Fixed>);

const CACHE_MAX: usize = 4096;

impl Cache {
    pub async fn get(&mut self, names: &Names, ip: IpAddr) -> &Fixed {
        if !self.0.contains_key(&ip) {
            if self.0.len() >= CACHE_MAX {
                self.0.clear();
            }
            let fixed = names.resolve(ip).await;
            self.0.insert(ip, fixed);
        }
        &self.0[&ip]
    }
}
