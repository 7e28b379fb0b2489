//! The netcat UDP source (`netcatudp`, `org.apache.flume.source.NetcatUdpSource`): one
//! event per datagram, its body up to the first `\n`, as Flume reads it. Every datagram
//! that is ready when the socket wakes goes into one batch (one transaction). UDP cannot
//! push back, so a batch the channel refuses is dropped and counted, as in Flume.

use super::{Bound, Plan, Shard, SourceCtx, SourceType};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::{Event, Headers};
use crate::runtime::socket::resolve;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::rc::Rc;

const KEYS: &[KeySpec] = &[
    KeySpec::required("bind", KeyKind::Str, "Host name or IP address to bind to"),
    KeySpec::required("port", KeyKind::PORT, "Port to bind to"),
    KeySpec::new(
        "remoteAddressHeader",
        KeyKind::Str,
        None,
        "Header that receives the sender's address, as /ip:port",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["netcatudp"],
    class: "org.apache.flume.source.NetcatUdpSource",
    doc: "Listens on a UDP port and turns each datagram (up to its first newline) into an event.",
    keys: KEYS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetcatUdpConfig {
    pub bind: String,
    pub port: u16,
    pub remote_address_header: Option<String>,
}

impl Component for NetcatUdpConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        Ok(NetcatUdpConfig {
            bind: k.str("bind")?,
            port: k.int("port")? as u16,
            remote_address_header: k.opt_str("remoteAddressHeader")?,
        })
    }
}

impl SourceType for NetcatUdpConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        Plan::udp(&self.bind, self.port)
    }
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        let addr = resolve(&self.bind, self.port)?;
        let listening = Listening {
            socket: crate::runtime::socket::udp_socket(addr, 4 << 20)?,
            cfg: self.clone(),
        };
        Ok(Bound::new(listening, run))
    }
}

struct Listening {
    socket: std::net::UdpSocket,
    cfg: NetcatUdpConfig,
}

const MAX_DATAGRAM: usize = 65536;

async fn run(l: Listening, ctx: Rc<SourceCtx>) {
    let socket = match tokio::net::UdpSocket::from_std(l.socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(source = %ctx.name, "cannot register UDP socket: {e}");
            return;
        }
    };
    let max_batch = ctx.delivery.max_batch();
    let mut buf = BytesMut::with_capacity(MAX_DATAGRAM * 8);
    loop {
        tokio::select! {
            _ = ctx.stop.wait() => return,
            r = socket.readable() => if r.is_err() { return },
        }
        crate::runtime::spin::activity();
        let mut batch = Vec::new();
        while batch.len() < max_batch {
            if buf.capacity() - buf.len() < MAX_DATAGRAM {
                buf = BytesMut::with_capacity(MAX_DATAGRAM * 8);
            }
            match socket.try_recv_buf_from(&mut buf) {
                Ok((n, peer)) => {
                    let datagram = buf.split_to(n).freeze();
                    let end = datagram.iter().position(|&b| b == b'\n').unwrap_or(n);
                    batch.push(Event::with_headers(
                        headers(&l.cfg, peer),
                        datagram.slice(..end),
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(source = %ctx.name, "recv failed: {e}");
                    break;
                }
            }
        }
        if let Err(refused) = ctx.deliver(batch).await {
            let lost = refused.events.len();
            tracing::warn!(source = %ctx.name, "dropped {lost} datagrams: {}", refused.error);
        }
    }
}

fn headers(cfg: &NetcatUdpConfig, peer: SocketAddr) -> Headers {
    let mut h = Headers::new();
    if let Some(name) = &cfg.remote_address_header {
        // Java's InetSocketAddress.toString() of an unresolved peer: "/ip:port".
        h.set(name.as_str(), format!("/{peer}"));
    }
    h
}
