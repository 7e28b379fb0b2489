//! The multiport syslog TCP source (`multiport_syslogtcp`,
//! `org.apache.flume.source.MultiportSyslogTCPSource`): syslog lines on several TCP (or
//! TLS) ports, each port with its own charset, parsed as Flume's `SyslogParser` does.
//! Lines are split as Flume's `LineSplitter` splits them (`Lines`): at most eventSize
//! bytes, newline counted, a longer line cut there and marked Incomplete. On every shard,
//! every port (SO_REUSEPORT); `numProcessors` sizes nothing here, the shards do.

use super::conn::{self, ConnCfg};
use super::decode::{Keep, LineParser};
use super::keys;
use super::peer::Names;
use crate::avro_rpc::tls;
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use crate::runtime::budget::{Budget, Hold};
use crate::runtime::socket::resolve;
use crate::source::{Bound, Listen, Placement, Plan, Shard, SourceCtx, SourceType};
use encoding_rs::Encoding;
use std::collections::BTreeMap;
use std::rc::Rc;

const KEYS: &[KeySpec] = &[
    keys::HOST,
    KeySpec::required("ports", KeyKind::List, "Space-separated ports to bind to"),
    KeySpec::new(
        "portHeader",
        KeyKind::Str,
        None,
        "Header that receives the port the message came in on",
    ),
    keys::EVENT_SIZE,
    keys::KEEP_FIELDS,
    KeySpec::new(
        "charset.default",
        KeyKind::Str,
        Some("UTF-8"),
        "Character set of the messages (a WHATWG/IANA label: UTF-8, ISO-8859-1, ...)",
    ),
    KeySpec::new(
        "charset.port.*",
        KeyKind::Prefix,
        None,
        "charset.port.<port>: the character set of one port's messages",
    ),
    KeySpec::new(
        "batchSize",
        KeyKind::POSITIVE,
        Some("100"),
        "Most events per channel transaction",
    ),
    KeySpec::new(
        "readBufferBytes",
        KeyKind::POSITIVE,
        Some("1024"),
        "Flume: MINA's read buffer size. flume-fast reads 64 KiB at a time; accepted for compatibility",
    ),
    KeySpec::ignored(
        "numProcessors",
        "Flume: MINA's processor threads. flume-fast serves every port on every shard's loop (--cores); accepted for compatibility",
    ),
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
    aliases: &["multiport_syslogtcp"],
    class: "org.apache.flume.source.MultiportSyslogTCPSource",
    doc: "Listens on several TCP ports (optionally TLS) for newline-framed syslog messages, with a charset per port.",
    keys: KEYS,
};

#[derive(Debug, Clone)]
pub struct MultiportConfig {
    pub host: Option<String>,
    pub ports: Vec<u16>,
    pub port_header: Option<String>,
    pub event_size: usize,
    pub keep: Keep,
    pub default_charset: &'static Encoding,
    pub port_charsets: BTreeMap<u16, &'static Encoding>,
    pub names: Names,
    pub conn: ConnCfg,
    /// Per shard, over every port (see `runtime::budget`).
    pub max_buffered: usize,
}

fn charset(label: &str) -> Result<&'static Encoding, String> {
    Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| format!("unknown charset '{label}'"))
}

impl Component for MultiportConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let host = k.opt_str("host")?;
        let mut ports = Vec::new();
        for p in k.list("ports")? {
            match p.parse::<u16>() {
                Ok(n) => ports.push(n),
                Err(_) => return Err(k.invalid("ports", format!("'{p}' is not a port number"))),
            }
        }
        if ports.is_empty() {
            return Err(k.invalid("ports", "no port listed"));
        }
        let port_header = k.opt_str("portHeader")?;
        let event_size = k.usize("eventSize")?;
        let keep = Keep::from_flume(&k.str("keepFields")?);
        let default_charset =
            charset(&k.str("charset.default")?).map_err(|e| k.invalid("charset.default", e))?;
        let mut port_charsets = BTreeMap::new();
        for (port, prop) in k.prefixed("charset.port") {
            let bad = |msg: String| ConfigError::Key {
                loc: prop.loc.clone(),
                key: prop.key.clone(),
                msg,
            };
            let port: u16 = port
                .parse()
                .map_err(|_| bad(format!("'{port}' is not a port number")))?;
            if !ports.contains(&port) {
                return Err(bad(format!("port {port} is not one of ports")));
            }
            port_charsets.insert(port, charset(&prop.value).map_err(bad)?);
        }
        let batch = k.usize("batchSize")?;
        k.usize("readBufferBytes")?;
        if k.opt_str("numProcessors")?.is_some() {
            tracing::info!(
                "{}.numProcessors is accepted for compatibility: flume-fast serves every port on its shards' loops (--cores)",
                k.prefix()
            );
        }
        Ok(MultiportConfig {
            host,
            ports,
            port_header,
            event_size,
            keep,
            default_charset,
            port_charsets,
            names: Names {
                ip: k.opt_str("clientIPHeader")?,
                hostname: k.opt_str("clientHostnameHeader")?,
            },
            conn: ConnCfg {
                tls: tls::server_from_keys(k)?,
                idle_timeout: k.opt_millis("idle-timeout")?,
                batch,
            },
            max_buffered: k.usize("max-buffered-bytes")?,
        })
    }
}

impl SourceType for MultiportConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        let host = keys::bind_host(&self.host);
        Ok(Plan {
            placement: Placement::EveryShard,
            listens: self
                .ports
                .iter()
                .map(|&p| resolve(host, p).map(Listen::Tcp))
                .collect::<std::io::Result<_>>()?,
        })
    }
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        let host = keys::bind_host(&self.host);
        let listeners = self
            .ports
            .iter()
            .map(|&p| {
                let l = crate::runtime::socket::tcp_listener(resolve(host, p)?)?;
                Ok((p, l))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Bound::new(
            Listening {
                listeners,
                cfg: self.clone(),
            },
            run,
        ))
    }
}

struct Listening {
    listeners: Vec<(u16, std::net::TcpListener)>,
    cfg: MultiportConfig,
}

async fn run(l: Listening, ctx: Rc<SourceCtx>) {
    let cfg = Rc::new(l.cfg);
    let budget = Budget::new(cfg.max_buffered);
    let mut ports = Vec::new();
    for (port, listener) in l.listeners {
        let (ctx, cfg, budget) = (ctx.clone(), cfg.clone(), budget.clone());
        ports.push(tokio_uring::spawn(async move {
            serve_port(port, listener, ctx, cfg, budget).await
        }));
    }
    for p in ports {
        let _ = p.await;
    }
}

async fn serve_port(
    port: u16,
    listener: std::net::TcpListener,
    ctx: Rc<SourceCtx>,
    cfg: Rc<MultiportConfig>,
    budget: Rc<Budget>,
) {
    let encoding = *cfg.port_charsets.get(&port).unwrap_or(&cfg.default_charset);
    let ctx2 = ctx.clone();
    crate::source::accept_loop(listener, &ctx2, |stream, peer| {
        let (ctx, cfg) = (ctx.clone(), cfg.clone());
        let hold = Hold::new(&budget);
        Some(async move {
            let mut fixed = cfg.names.resolve(peer.ip()).await;
            if let Some(h) = &cfg.port_header {
                fixed.push(h, port.to_string());
            }
            let parser = LineParser::new(cfg.keep);
            let mut lines = Lines::new(cfg.event_size);
            conn::serve(stream, peer, &cfg.conn, &ctx, hold, &fixed, |bytes, out| {
                lines.split(bytes, |line, incomplete| {
                    let mut e: Event = parser.parse(line, encoding);
                    if incomplete {
                        e.headers.set("flume.syslog.status", "Incomplete");
                    }
                    out.push(e);
                });
                lines.held()
            })
            .await;
        })
    })
    .await;
}

/// Flume's `LineSplitter`: a line is at most `max` bytes counting its `\n` (which is not
/// part of it); with no `\n` within `max` bytes, the `max` bytes are a line of their own,
/// incomplete, and the rest starts the next one.
#[derive(Debug)]
pub struct Lines {
    max: usize,
    saved: Vec<u8>,
}

impl Lines {
    pub fn new(max: usize) -> Lines {
        Lines {
            max: max.max(1),
            saved: Vec::new(),
        }
    }

    /// Bytes of an unfinished line held.
    pub fn held(&self) -> usize {
        self.saved.len()
    }

    /// Calls `line(bytes, incomplete)` for each line `input` finishes.
    pub fn split(&mut self, mut input: &[u8], mut line: impl FnMut(&[u8], bool)) {
        while !input.is_empty() {
            let room = self.max - self.saved.len();
            let scan = &input[..room.min(input.len())];
            match memchr::memchr(b'\n', scan) {
                Some(i) => {
                    if self.saved.is_empty() {
                        line(&input[..i], false);
                    } else {
                        self.saved.extend_from_slice(&input[..i]);
                        line(&self.saved, false);
                        self.saved.clear();
                    }
                    input = &input[i + 1..];
                }
                None if scan.len() == room => {
                    if self.saved.is_empty() {
                        line(scan, true);
                    } else {
                        self.saved.extend_from_slice(scan);
                        line(&self.saved, true);
                        self.saved.clear();
                    }
                    input = &input[room..];
                }
                None => {
                    self.saved.extend_from_slice(scan);
                    input = &[];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<(Vec<u8>, bool)> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        for c in chunks {
            lines.split(c, |l, inc| out.push((l.to_vec(), inc)));
        }
        out
    }

    #[test]
    fn lines_are_cut_as_flume_cuts_them() {
        let want = vec![
            (b"abc".to_vec(), false),
            (b"".to_vec(), false),
            (b"abcde".to_vec(), true),
            (b"".to_vec(), false),
            (b"abcd".to_vec(), false),
        ];
        // max 5: "abcd\n" fits (newline counted); "abcde" is cut, its "\n" ends an empty line.
        assert_eq!(split(&[b"abc\n\nabcde\nabcd\n"], 5), want);
        let bytes: Vec<&[u8]> = b"abc\n\nabcde\nabcd\n".chunks(1).collect();
        assert_eq!(split(&bytes, 5), want);
    }

    #[test]
    fn charsets_and_ports_are_checked() {
        use crate::config::keys::from_pairs;
        let ok: MultiportConfig = from_pairs(
            "a1.sources.r1",
            &[("ports", "5140 5141"), ("charset.port.5141", "ISO-8859-1")],
        )
        .unwrap();
        assert_eq!(ok.ports, [5140, 5141]);
        assert_eq!(ok.default_charset, encoding_rs::UTF_8);
        assert_eq!(ok.port_charsets[&5141], encoding_rs::WINDOWS_1252);
        let e = from_pairs::<MultiportConfig>(
            "a1.sources.r1",
            &[("ports", "5140"), ("charset.port.5140", "klingon")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("a.conf:11") && e.contains("charset.port.5140"),
            "{e}"
        );
        let e = from_pairs::<MultiportConfig>(
            "a1.sources.r1",
            &[("ports", "5140"), ("charset.default", "klingon")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("a.conf:11") && e.contains("charset.default"),
            "{e}"
        );
        let e = from_pairs::<MultiportConfig>("a1.sources.r1", &[("ports", "5140 x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'x' is not a port number"), "{e}");
    }
}
