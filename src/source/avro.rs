//! The avro source (`avro`, `org.apache.flume.source.AvroSource`): serves Flume's Avro RPC
//! (`append`, `appendBatch`) on a TCP port, on every shard (SO_REUSEPORT). Each request's
//! events go to the channels in one transaction; the reply is OK only after the commit and
//! FAILED when a channel refuses them (the client then retries, as Flume's clients do).
//!
//! A connection that sends something we cannot serve (garbage, a frame above
//! `max-frame-size`, a truncated frame, an unknown message, an incompatible protocol) is
//! closed with a log line naming the peer and the reason; the others carry on.

use super::{Bound, Plan, Shard, SourceCtx, SourceType, TcpListening};
use crate::avro_rpc::conn::{Compression, Conn, ReadError, Tls};
use crate::avro_rpc::protocol::Status;
use crate::avro_rpc::server::{Request, ServerConn};
use crate::avro_rpc::tls;
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::runtime::budget::{Budget, Hold};
use crate::runtime::spin;
use bytes::BytesMut;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;
use tokio_uring::net::TcpStream;

const KEYS: &[KeySpec] = &[
    KeySpec::required("bind", KeyKind::Str, "Host name or IP address to listen on"),
    KeySpec::required("port", KeyKind::PORT, "Port to listen on"),
    KeySpec::new(
        "threads",
        KeyKind::NON_NEGATIVE,
        Some("0"),
        "Flume: the most worker threads serving connections (it never refuses a client). flume-fast serves every connection on the shards' own loops (--cores), so this sizes nothing and never refuses a client; accepted for compatibility",
    ),
    KeySpec::new(
        "compression-type",
        KeyKind::Choice(&["none", "deflate"]),
        Some("none"),
        "deflate: the connection is a zlib stream both ways (the client must match)",
    ),
    KeySpec::new(
        "ipFilter",
        KeyKind::Bool,
        Some("false"),
        "Filter connecting clients by ipFilterRules",
    ),
    KeySpec::new(
        "ipFilterRules",
        KeyKind::Str,
        None,
        "Comma-separated <allow|deny>:<ip|name>:<pattern> rules (* and ? wildcards); first match wins, no match allows",
    ),
    tls::SSL,
    tls::KEYSTORE,
    tls::KEYSTORE_PASSWORD,
    tls::KEYSTORE_TYPE,
    crate::avro_rpc::tls::EXCLUDE_PROTOCOLS,
    crate::avro_rpc::tls::INCLUDE_PROTOCOLS,
    crate::avro_rpc::tls::EXCLUDE_CIPHER_SUITES,
    crate::avro_rpc::tls::INCLUDE_CIPHER_SUITES,
    KeySpec::new(
        "max-frame-size",
        KeyKind::int(1024, 1 << 30),
        Some("67108864"),
        "flume-fast: largest request (bytes, after decompression); a bigger one closes the connection",
    ),
    KeySpec::new(
        "handshake-timeout",
        KeyKind::POSITIVE,
        Some("10000"),
        "flume-fast: milliseconds a new connection may take to finish its TLS handshake, and may go without receiving anything before its first request (carrying the Avro handshake) is in; then it is closed",
    ),
    // Flume's clients keep their connection open between batches and send no keep-alive,
    // so this closes the connection of a sink that merely has nothing to send. That costs
    // it nothing: Avro's NettyTransceiver (under Java Flume's NettyAvroRpcClient) sees the
    // close when it happens and reconnects on its next call, and flume-fast's avro sink
    // checks a connection quiet for a second before using it. What is left is the rare
    // batch sent in the very instant of the close, which fails once and is retried. So the
    // timeout only bounds how long a dead or silent peer keeps a socket and its buffers:
    // five minutes keeps the connection of any sink with a batch every few minutes, and
    // still reclaims abandoned ones.
    KeySpec::new(
        "idle-timeout",
        KeyKind::NON_NEGATIVE,
        Some("300000"),
        "flume-fast: milliseconds a connection may stay silent between requests, or stalled in the middle of one, before it is closed (0: never). Flume's clients (Avro's NettyTransceiver, flume-fast's avro sink) reconnect on their next batch when the agent has closed an idle connection",
    ),
    KeySpec::new(
        "max-buffered-bytes",
        KeyKind::int(1024, 1 << 40),
        Some("8388608"),
        "flume-fast: bytes of unfinished requests (after decompression) buffered over all of this source's connections on one shard (each shard has its own); over it, connections holding a sixteenth of it or more stop being read (TCP pushes back on their clients) until it is below again, while smaller requests go on up to twice it; a request alone in holding anything may still grow to max-frame-size, and when all that hold something wait, one of them goes ahead up to this size. Set it above the largest request clients send",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["avro"],
    class: "org.apache.flume.source.AvroSource",
    doc: "Receives events over Flume's Avro RPC (from avro sinks, avro-client, Flume SDK clients).",
    keys: KEYS,
};

#[derive(Debug, Clone)]
pub struct AvroSourceConfig {
    pub bind: String,
    pub port: u16,
    pub compression: Compression,
    pub ip_rules: Option<Vec<IpRule>>,
    pub max_frame: usize,
    pub tls: Tls,
    pub handshake_timeout: Duration,
    /// `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Per shard (see `runtime::budget`).
    pub max_buffered: usize,
}

impl Component for AvroSourceConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let bind = k.str("bind")?;
        let port = k.int("port")? as u16;
        let threads = k.usize("threads")?;
        if threads > 0 {
            tracing::info!(
                "{}.threads = {threads} is accepted for compatibility: flume-fast serves every connection on its shards' loops (--cores) and never refuses a client",
                k.prefix()
            );
        }
        let compression = match k.choice("compression-type")?.as_str() {
            "deflate" => Compression::Deflate(6),
            _ => Compression::None,
        };
        let ip_rules = if k.bool("ipFilter")? {
            let text = k.str("ipFilterRules")?;
            if text.trim().is_empty() {
                return Err(k.invalid("ipFilter", "ipFilter is true but ipFilterRules is not set"));
            }
            Some(parse_rules(&text).map_err(|e| k.invalid("ipFilterRules", e))?)
        } else {
            k.opt_str("ipFilterRules")?;
            None
        };
        let tls = tls::server_from_keys(k)?.map_or(Tls::None, Tls::Server);
        let max_frame = k.usize("max-frame-size")?;
        let handshake_timeout = k.millis("handshake-timeout")?;
        let idle_timeout = k.opt_millis("idle-timeout")?;
        let max_buffered = k.usize("max-buffered-bytes")?;
        Ok(AvroSourceConfig {
            bind,
            port,
            compression,
            ip_rules,
            max_frame,
            tls,
            handshake_timeout,
            idle_timeout,
            max_buffered,
        })
    }
}

/// One `allow|deny:ip|name:pattern` rule of Flume's `ipFilterRules`.
#[derive(Debug, Clone)]
pub struct IpRule {
    pub allow: bool,
    pub by_name: bool,
    /// `n:localhost`: matches this host's own addresses (Flume's special case).
    localhost: bool,
    pattern: regex::Regex,
}

/// Parses Flume's rule list (`AvroSource.generateRule` + Netty's `PatternRule`).
pub fn parse_rules(text: &str) -> Result<Vec<IpRule>, String> {
    text.split(',')
        .map(|r| {
            let r = r.trim();
            let bad = || {
                format!(
                    "invalid ipFilter rule '{r}': should look like <allow|deny>:<ip|name>:<pattern>"
                )
            };
            let (access, rest) = r.split_once(':').ok_or_else(bad)?;
            let (kind, pattern) = rest.split_once(':').ok_or_else(bad)?;
            let allow = match access {
                "allow" => true,
                "deny" => false,
                _ => return Err(bad()),
            };
            let by_name = match kind {
                "ip" => false,
                "name" => true,
                _ => return Err(bad()),
            };
            let localhost = by_name && pattern == "localhost";
            // As PatternRule: '.' literal, '*' any run, '?' any one character.
            let re = format!(
                "^(?:{})$",
                regex::escape(pattern)
                    .replace(r"\*", ".*")
                    .replace(r"\?", ".")
            );
            let pattern = regex::Regex::new(&re).map_err(|e| format!("{}: {e}", bad()))?;
            Ok(IpRule {
                allow,
                by_name,
                localhost,
                pattern,
            })
        })
        .collect()
}

/// Whether a client may connect: the first matching rule decides, no match allows (as
/// Netty's `RuleBasedIpFilter`). Name rules need the peer's name: a reverse lookup, done
/// off the shard's loop and only when such a rule is reached.
pub async fn allowed(rules: &[IpRule], ip: IpAddr) -> bool {
    let mut name: Option<Option<String>> = None;
    for rule in rules {
        let hit = if rule.localhost {
            ip.is_loopback() || local_addresses().contains(&ip)
        } else if rule.by_name {
            if name.is_none() {
                name = Some(reverse_lookup(ip).await);
            }
            name.as_ref()
                .and_then(|n| n.as_deref())
                .is_some_and(|n| rule.pattern.is_match(n))
        } else {
            rule.pattern.is_match(&ip.to_string())
        };
        if hit {
            return rule.allow;
        }
    }
    true
}

fn local_addresses() -> Vec<IpAddr> {
    use std::net::ToSocketAddrs;
    (crate::runtime::host::hostname().as_str(), 0)
        .to_socket_addrs()
        .map(|a| a.map(|s| s.ip()).collect())
        .unwrap_or_default()
}

pub(crate) async fn reverse_lookup(ip: IpAddr) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        let sa: socket2::SockAddr = SocketAddr::new(ip, 0).into();
        let mut host = [0 as libc::c_char; 1025];
        // SAFETY: sa is a valid sockaddr of the given length; host is writable for its
        // length; no service buffer is requested.
        let rc = unsafe {
            libc::getnameinfo(
                sa.as_ptr().cast(),
                sa.len(),
                host.as_mut_ptr(),
                host.len() as libc::socklen_t,
                std::ptr::null_mut(),
                0,
                0,
            )
        };
        if rc != 0 {
            return None;
        }
        // SAFETY: getnameinfo wrote a NUL-terminated string on success.
        let s = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
        Some(s.to_string_lossy().into_owned())
    })
    .await
    .ok()
    .flatten()
}

impl SourceType for AvroSourceConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        Plan::tcp(&self.bind, self.port)
    }
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        Ok(Bound::new(
            TcpListening::bind(&self.bind, self.port, self)?,
            run,
        ))
    }
}

/// Serves the source on this shard. No connection is ever refused for the number already
/// open (`threads` sizes nothing here): an idle or silent client cannot keep a real one out.
/// What connections may cost is bounded instead: each is closed after `handshake-timeout`
/// without its handshake and `idle-timeout` of silence, and the bytes of unfinished
/// requests they buffer share one budget per shard (`max-buffered-bytes`).
async fn run(l: TcpListening<AvroSourceConfig>, ctx: Rc<SourceCtx>) {
    let cfg = Rc::new(l.cfg);
    let budget = Budget::new(cfg.max_buffered);
    super::accept_loop(l.listener, &ctx, |stream, peer| {
        let (ctx, cfg) = (ctx.clone(), cfg.clone());
        let hold = Hold::new(&budget);
        Some(async move {
            let admitted = match &cfg.ip_rules {
                Some(rules) => allowed(rules, peer.ip()).await,
                None => true,
            };
            if admitted {
                connection(stream, peer, &cfg, &ctx, hold).await;
            } else {
                tracing::warn!(source = %ctx.name, %peer, "connection refused by ipFilterRules");
            }
        })
    })
    .await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    cfg: &AvroSourceConfig,
    ctx: &SourceCtx,
    hold: Hold,
) {
    let _ = stream.set_nodelay(true);
    let mut conn = match Conn::new(stream, cfg.max_frame, cfg.compression, &cfg.tls) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(source = %ctx.name, %peer, "closing the connection: TLS set-up failed: {e}");
            return;
        }
    };
    if !matches!(cfg.tls, Tls::None) {
        let handshake = tokio::select! {
            _ = ctx.stop.wait() => return,
            r = tokio::time::timeout(cfg.handshake_timeout, conn.handshake()) => r,
        };
        match handshake {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // Plain Avro bytes are not a TLS record: say what the likely cause is.
                let hint = match e {
                    ReadError::Tls(rustls::Error::InvalidMessage(_)) => {
                        " (is the client using TLS? this source has ssl = true)"
                    }
                    _ => "",
                };
                tracing::warn!(source = %ctx.name, %peer, "closing the connection: TLS handshake failed: {e}{hint}");
                return;
            }
            Err(_) => {
                tracing::warn!(source = %ctx.name, %peer, "closing the connection: no TLS handshake within {:?} (handshake-timeout)", cfg.handshake_timeout);
                return;
            }
        }
    }
    // Until its first request is in, a connection gets handshake-timeout; then idle-timeout.
    conn.set_idle_timeout(Some(cfg.handshake_timeout));
    conn.set_budget(hold);
    let mut first = true;
    let mut server = ServerConn::new();
    let mut out = BytesMut::with_capacity(256);
    let mut failing = false;
    let mut client = spin::Peer::new();
    loop {
        let next = tokio::select! {
            _ = ctx.stop.wait() => return,
            r = conn.next() => r,
        };
        let frame = match next {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(ReadError::Idle { held: 0, .. }) if first => {
                tracing::warn!(source = %ctx.name, %peer, "closing the connection: no request within {:?} (handshake-timeout)", cfg.handshake_timeout);
                return;
            }
            // A client quiet between requests is no fault (its next call reconnects).
            Err(e @ ReadError::Idle { held: 0, .. }) if !first => {
                tracing::info!(source = %ctx.name, %peer, "closing the connection: {e} (idle-timeout)");
                return;
            }
            Err(e @ ReadError::Idle { .. }) => {
                let key = if first {
                    "handshake-timeout"
                } else {
                    "idle-timeout"
                };
                tracing::warn!(source = %ctx.name, %peer, "closing the connection: {e} ({key})");
                return;
            }
            Err(e) => {
                tracing::warn!(source = %ctx.name, %peer, "closing the connection: {e}");
                return;
            }
        };
        if first {
            first = false;
            conn.set_idle_timeout(cfg.idle_timeout);
        }
        let mut call = match server.on_frame(&frame) {
            Ok(call) => call,
            Err(rejected) => {
                tracing::warn!(source = %ctx.name, %peer, "closing the connection: {}", rejected.error);
                out.extend_from_slice(&rejected.reply);
                let _ = conn.send(out).await;
                return;
            }
        };
        drop(frame);
        let events = match call.request {
            Request::Reply(ref bytes) => {
                out.extend_from_slice(bytes);
                match conn.send(out).await {
                    Ok(b) => out = b,
                    Err(_) => return,
                }
                continue;
            }
            Request::Events { ref mut events, .. } => std::mem::take(events),
        };
        client.answering();
        let status = match ctx.deliver(events).await {
            Ok(()) => {
                if failing {
                    tracing::info!(source = %ctx.name, %peer, "channels accept events again");
                    failing = false;
                }
                Status::Ok
            }
            Err(refused) => {
                if !failing {
                    tracing::warn!(source = %ctx.name, %peer, "answering FAILED: {}", refused.error);
                    failing = true;
                }
                Status::Failed
            }
        };
        call.reply_status(status, &mut out);
        let sent = conn.send(out).await;
        client.answered();
        conn.expect_data();
        match sent {
            Ok(b) => out = b,
            Err(e) => {
                tracing::debug!(source = %ctx.name, %peer, "write failed: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio_uring::start(f)
    }

    #[test]
    fn rules_parse_and_the_first_match_wins() {
        let rules = parse_rules("allow:ip:127.*, deny:ip:*").unwrap();
        run(async {
            assert!(allowed(&rules, "127.0.0.1".parse().unwrap()).await);
            assert!(!allowed(&rules, "10.1.2.3".parse().unwrap()).await);
        });
        let rules = parse_rules("deny:ip:192.168.1.?,allow:ip:192.168.*").unwrap();
        run(async {
            assert!(!allowed(&rules, "192.168.1.7".parse().unwrap()).await);
            assert!(allowed(&rules, "192.168.1.70".parse().unwrap()).await);
            // No rule matches: allowed.
            assert!(allowed(&rules, "10.0.0.1".parse().unwrap()).await);
        });
        // '.' is literal, not "any character".
        let rules = parse_rules("deny:ip:10.0.0.1").unwrap();
        run(async { assert!(!allowed(&rules, "10.0.0.1".parse().unwrap()).await) });
        assert!(!rules[0].pattern.is_match("10a0b0c1"));
        let rules = parse_rules("deny:name:localhost").unwrap();
        run(async { assert!(!allowed(&rules, "127.0.0.1".parse().unwrap()).await) });
    }

    #[test]
    fn malformed_rules_are_refused_with_the_expected_shape() {
        for bad in ["allow", "allow:ip", "permit:ip:*", "allow:host:*"] {
            let e = parse_rules(bad).unwrap_err();
            assert!(e.contains("<allow|deny>:<ip|name>:<pattern>"), "{e}");
        }
    }
}
