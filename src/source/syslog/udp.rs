//! The syslog UDP source (`syslogudp`, `org.apache.flume.source.SyslogUDPSource`): one
//! event per datagram (up to 64 KiB, as RFC 5426 allows), parsed as Flume's `SyslogUtils`
//! does. On every shard (SO_REUSEPORT). Every datagram ready when the socket wakes goes
//! into one batch (non-blocking receives until the socket is empty, or a transaction's
//! worth): one channel transaction per wake, not per datagram. UDP cannot push back, so a
//! batch the channels refuse is dropped, counted and logged, as Flume drops it.

use super::decode::{Decoder, Keep};
use super::keys;
use super::peer::{Cache, Names};
use crate::config::keys::{KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::runtime::metrics::Counter;
use crate::runtime::socket::resolve;
use crate::source::{Bound, Plan, Shard, SourceCtx, SourceType};
use std::rc::Rc;

const KEYS: &[KeySpec] = &[
    keys::HOST,
    keys::PORT,
    keys::KEEP_FIELDS,
    keys::CLIENT_IP_HEADER,
    keys::CLIENT_HOSTNAME_HEADER,
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["syslogudp"],
    class: "org.apache.flume.source.SyslogUDPSource",
    doc: "Listens on a UDP port for syslog messages, one event per datagram.",
    keys: KEYS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogUdpConfig {
    pub host: Option<String>,
    pub port: u16,
    pub keep: Keep,
    pub names: Names,
}

impl Component for SyslogUdpConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        Ok(SyslogUdpConfig {
            host: k.opt_str("host")?,
            port: k.int("port")? as u16,
            keep: Keep::from_flume(&k.str("keepFields")?),
            names: Names {
                ip: k.opt_str("clientIPHeader")?,
                hostname: k.opt_str("clientHostnameHeader")?,
            },
        })
    }
}

impl SourceType for SyslogUdpConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        Plan::udp(keys::bind_host(&self.host), self.port)
    }
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        let addr = resolve(keys::bind_host(&self.host), self.port)?;
        let listening = Listening {
            socket: crate::runtime::socket::udp_socket(addr, 4 << 20)?,
            cfg: self.clone(),
        };
        Ok(Bound::new(listening, run))
    }
}

struct Listening {
    socket: std::net::UdpSocket,
    cfg: SyslogUdpConfig,
}

/// The largest datagram (RFC 5426's bound, Flume's `maxsize`).
const MAX_DATAGRAM: usize = 1 << 16;

async fn run(l: Listening, ctx: Rc<SourceCtx>) {
    let socket = match tokio::net::UdpSocket::from_std(l.socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(source = %ctx.name, "cannot register UDP socket: {e}");
            return;
        }
    };
    let dropped: Counter = ctx.refused.clone();
    let max_batch = ctx.delivery.max_batch().max(1);
    // Flume's UDP handler sets the event size to the largest datagram.
    let mut dec = Decoder::new(MAX_DATAGRAM, l.cfg.keep);
    let mut senders = Cache::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            _ = ctx.stop.wait() => return,
            r = socket.readable() => if r.is_err() { return },
        }
        crate::runtime::spin::activity();
        let mut batch = Vec::new();
        while batch.len() < max_batch {
            match socket.try_recv_from(&mut buf) {
                Ok((n, peer)) => {
                    let mut event = dec.datagram(&buf[..n]);
                    if !l.cfg.names.is_empty() {
                        let fixed = senders.get(&l.cfg.names, peer.ip()).await;
                        fixed.apply(std::slice::from_mut(&mut event));
                    }
                    batch.push(event);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(source = %ctx.name, "recv failed: {e}");
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        if let Err(refused) = ctx.deliver(batch).await {
            let lost = refused.events.len();
            tracing::warn!(source = %ctx.name, "dropped {lost} datagrams ({} dropped so far): {}", dropped.get(), refused.error);
        }
    }
}
