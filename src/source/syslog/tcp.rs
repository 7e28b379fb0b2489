//! The syslog TCP source (`syslogtcp`, `org.apache.flume.source.SyslogTcpSource`): one
//! event per syslog message of a TCP (or TLS) connection, parsed as Flume's `SyslogUtils`
//! does. Messages are newline-framed as Flume reads them, or octet-counted (RFC 6587),
//! which Flume cannot read, detected per message (`framing`). On every shard
//! (SO_REUSEPORT); the connection plumbing is `conn`'s.

use super::conn::{self, ConnCfg};
use super::decode::{Decoder, Keep};
use super::framing::Framer;
use super::keys;
use super::peer::Names;
use crate::avro_rpc::tls;
use crate::config::keys::{KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::runtime::budget::{Budget, Hold};
use crate::source::{Bound, Plan, Shard, SourceCtx, SourceType, TcpListening};
use std::rc::Rc;

const KEYS: &[KeySpec] = &[
    keys::HOST,
    keys::PORT,
    keys::EVENT_SIZE,
    keys::KEEP_FIELDS,
    keys::CLIENT_IP_HEADER,
    keys::CLIENT_HOSTNAME_HEADER,
    tls::SSL,
    tls::KEYSTORE,
    tls::KEYSTORE_PASSWORD,
    tls::KEYSTORE_TYPE,
    tls::EXCLUDE_PROTOCOLS,
    tls::INCLUDE_PROTOCOLS,
    tls::EXCLUDE_CIPHER_SUITES,
    tls::INCLUDE_CIPHER_SUITES,
    keys::IDLE_TIMEOUT,
    keys::MAX_BUFFERED_BYTES,
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["syslogtcp"],
    class: "org.apache.flume.source.SyslogTcpSource",
    doc: "Listens on a TCP port (optionally TLS) for syslog messages, newline-framed or octet-counted (RFC 6587), one event each.",
    keys: KEYS,
};

#[derive(Debug, Clone)]
pub struct SyslogTcpConfig {
    pub host: Option<String>,
    pub port: u16,
    pub event_size: usize,
    pub keep: Keep,
    pub names: Names,
    pub conn: ConnCfg,
    /// Per shard (see `runtime::budget`).
    pub max_buffered: usize,
}

impl Component for SyslogTcpConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        Ok(SyslogTcpConfig {
            host: k.opt_str("host")?,
            port: k.int("port")? as u16,
            event_size: k.usize("eventSize")?,
            keep: Keep::from_flume(&k.str("keepFields")?),
            names: Names {
                ip: k.opt_str("clientIPHeader")?,
                hostname: k.opt_str("clientHostnameHeader")?,
            },
            conn: ConnCfg {
                tls: tls::server_from_keys(k)?,
                idle_timeout: k.opt_millis("idle-timeout")?,
                batch: usize::MAX,
            },
            max_buffered: k.usize("max-buffered-bytes")?,
        })
    }
}

impl SourceType for SyslogTcpConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        Plan::tcp(keys::bind_host(&self.host), self.port)
    }
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        Ok(Bound::new(
            TcpListening::bind(keys::bind_host(&self.host), self.port, self)?,
            run,
        ))
    }
}

async fn run(l: TcpListening<SyslogTcpConfig>, ctx: Rc<SourceCtx>) {
    let mut cfg = l.cfg;
    // One transaction per read's worth, at most what every channel takes in one.
    cfg.conn.batch = ctx.delivery.max_batch().max(1);
    let cfg = Rc::new(cfg);
    let budget = Budget::new(cfg.max_buffered);
    crate::source::accept_loop(l.listener, &ctx, |stream, peer| {
        let (ctx, cfg) = (ctx.clone(), cfg.clone());
        let hold = Hold::new(&budget);
        Some(async move {
            let fixed = cfg.names.resolve(peer.ip()).await;
            let mut framer = Framer::new(cfg.event_size);
            let mut dec = Decoder::new(cfg.event_size, cfg.keep);
            conn::serve(stream, peer, &cfg.conn, &ctx, hold, &fixed, |bytes, out| {
                framer.push(bytes, &mut dec, out);
                framer.held()
            })
            .await;
        })
    })
    .await;
}
