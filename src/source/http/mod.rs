//! The HTTP source (`http`, `org.apache.flume.source.http.HTTPSource`): serves HTTP/1.1
//! (TLS optional) on every shard, and turns each POST (or GET, as Flume's servlet treats
//! it) into events through the configured handler, put into the channels in one
//! transaction per request. The answer comes after the commit: 200, or 503 when a channel
//! refuses the batch, 400/500 when the handler cannot read the request, as Flume's servlet
//! answers them. Other methods get the statuses Jetty gives Flume's servlet.
//!
//! `request` reads requests off the socket's bytes, `handler` (and `json`) turn them into
//! events, `conn` serves one connection, `io` is its plain or TLS stream.

mod chunked;
mod conn;
pub mod handler;
mod io;
pub mod json;
pub mod request;

use super::{Bound, Plan, Shard, SourceCtx, SourceType, TcpListening};
use crate::avro_rpc::tls;
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::runtime::budget::{Budget, Hold};
use handler::Handler;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

const JETTY_NOTE: &str = "Jetty setting of Flume's HTTP server; flume-fast has no Jetty, so keys under this prefix are accepted and ignored";

const KEYS: &[KeySpec] = &[
    KeySpec::new("bind", KeyKind::Str, Some("0.0.0.0"), "Host name or IP address to listen on"),
    KeySpec::required("port", KeyKind::PORT, "Port to listen on"),
    KeySpec::new(
        "handler",
        KeyKind::Str,
        Some(handler::JSON_CLASS),
        "Class of the request handler: org.apache.flume.source.http.JSONHandler (a JSON array of {headers, body} events), org.apache.flume.source.http.BLOBHandler or org.apache.flume.sink.solr.morphline.BlobHandler (the whole body as one event, request parameters as headers)",
    ),
    KeySpec::new(
        "handler.*",
        KeyKind::Prefix,
        None,
        "The handler's settings: handler.mandatoryParameters (BLOBHandler: comma-separated parameters a request must have), handler.maxBlobLength (morphline BlobHandler: bodies are cut at this many bytes, default 100000000)",
    ),
    KeySpec::new("ssl", KeyKind::Bool, Some("false"), "Serve HTTPS (rustls: TLSv1.2 and TLSv1.3) with the key of keystore"),
    KeySpec::new("enableSSL", KeyKind::Bool, None, "Deprecated spelling of ssl"),
    KeySpec::new(
        "keystore",
        KeyKind::Str,
        None,
        "PKCS12 file with the server's private key and certificate chain; when unset: -Djavax.net.ssl.keyStore, else $FLUME_SSL_KEYSTORE_PATH",
    ),
    KeySpec::new(
        "keystore-password",
        KeyKind::Str,
        None,
        "Password of keystore; when unset: -Djavax.net.ssl.keyStorePassword, else $FLUME_SSL_KEYSTORE_PASSWORD",
    ),
    KeySpec::new("keystorePassword", KeyKind::Str, None, "Deprecated spelling of keystore-password"),
    KeySpec::new(
        "keystore-type",
        KeyKind::Str,
        None,
        "PKCS12, or JKS (Flume's default) naming a PKCS12 file as Java 9+ reads it; when unset: -Djavax.net.ssl.keyStoreType, else $FLUME_SSL_KEYSTORE_TYPE",
    ),
    tls::EXCLUDE_PROTOCOLS,
    KeySpec::new("excludeProtocols", KeyKind::List, None, "Deprecated spelling of exclude-protocols"),
    tls::INCLUDE_PROTOCOLS,
    tls::EXCLUDE_CIPHER_SUITES,
    tls::INCLUDE_CIPHER_SUITES,
    KeySpec::new("QueuedThreadPool.*", KeyKind::Prefix, None, JETTY_NOTE),
    KeySpec::new("HttpConfiguration.*", KeyKind::Prefix, None, JETTY_NOTE),
    KeySpec::new("SslContextFactory.*", KeyKind::Prefix, None, JETTY_NOTE),
    KeySpec::new("ServerConnector.*", KeyKind::Prefix, None, JETTY_NOTE),
    KeySpec::new(
        "max-request-bytes",
        KeyKind::int(1024, 1 << 31),
        Some("67108864"),
        "flume-fast: largest request body (bytes, after chunked decoding); a bigger one is answered 413 and the connection closed",
    ),
    KeySpec::new(
        "idle-timeout",
        KeyKind::NON_NEGATIVE,
        Some("30000"),
        "flume-fast: milliseconds a connection may stay silent between requests, or stalled in the middle of one, before it is closed (0: never); 30000 is Jetty's default idle timeout, which Flume's server has",
    ),
    KeySpec::new(
        "max-buffered-bytes",
        KeyKind::int(1024, 1 << 40),
        Some("8388608"),
        "flume-fast: bytes of unfinished requests buffered over all of this source's connections on one shard; over it, connections holding a sixteenth of it or more stop being read (TCP pushes back) until it is below again, as for the avro source",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["http"],
    class: "org.apache.flume.source.http.HTTPSource",
    doc: "Receives events in HTTP POST requests (JSON batches, or whole bodies with a BLOB handler), over TLS if asked.",
    keys: KEYS,
};

#[derive(Debug, Clone)]
pub struct HttpSourceConfig {
    pub bind: String,
    pub port: u16,
    pub handler: Handler,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub max_request: usize,
    /// `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Per shard (see `runtime::budget`).
    pub max_buffered: usize,
}

impl Component for HttpSourceConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let bind = k.str("bind")?;
        let port = k.int("port")? as u16;
        let handler = handler_from_keys(k)?;
        let tls = server_tls(k)?;
        for prefix in [
            "QueuedThreadPool",
            "HttpConfiguration",
            "SslContextFactory",
            "ServerConnector",
        ] {
            for (key, _) in k.prefixed(prefix) {
                tracing::info!(
                    "{}.{prefix}.{key} is a Jetty setting; flume-fast has no Jetty and ignores it",
                    k.prefix()
                );
            }
        }
        Ok(HttpSourceConfig {
            bind,
            port,
            handler,
            tls,
            max_request: k.usize("max-request-bytes")?,
            idle_timeout: k.opt_millis("idle-timeout")?,
            max_buffered: k.usize("max-buffered-bytes")?,
        })
    }
}

fn handler_from_keys(k: &mut Keys) -> Result<Handler, ConfigError> {
    let class = k.str("handler")?;
    let sub = k.prefixed("handler");
    let get = |name: &str| sub.iter().find(|(key, _)| key == name).map(|(_, p)| p);
    let (handler, known): (Handler, &[&str]) = match class.trim() {
        handler::JSON_CLASS => (Handler::Json, &[]),
        handler::BLOB_CLASS => {
            let mandatory = get("mandatoryParameters")
                .map(|p| {
                    p.value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            (Handler::Blob { mandatory }, &["mandatoryParameters"])
        }
        handler::MORPHLINE_BLOB_CLASS => {
            let max = match get("maxBlobLength") {
                None => 100_000_000,
                Some(p) => match p.value.trim().parse::<i64>() {
                    Ok(n) if n > 0 && n <= i64::from(i32::MAX) => n as usize,
                    _ => {
                        return Err(ConfigError::Key {
                            loc: p.loc.clone(),
                            key: p.key.clone(),
                            msg: format!(
                                "maxBlobLength must be an integer greater than zero (at most {}), not '{}'",
                                i32::MAX,
                                p.value.trim()
                            ),
                        })
                    }
                },
            };
            (Handler::MorphlineBlob { max_blob_length: max }, &["maxBlobLength"])
        }
        other => {
            return Err(k.invalid(
                "handler",
                format!(
                    "unknown handler '{other}': flume-fast has {}, {} and {} (it cannot load a Java class)",
                    handler::JSON_CLASS,
                    handler::BLOB_CLASS,
                    handler::MORPHLINE_BLOB_CLASS
                ),
            ))
        }
    };
    for (key, p) in &sub {
        if !known.contains(&key.as_str()) {
            tracing::warn!(
                "{}: {}: the handler {} has no setting '{key}'; ignored",
                p.loc,
                p.key,
                class.trim()
            );
        }
    }
    Ok(handler)
}

/// `ssl` and the keystore keys (with Flume's deprecated spellings); the keystore is
/// opened now, so a wrong password or an unreadable file stops the agent at start-up.
fn server_tls(k: &mut Keys) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    let ssl = k.bool("ssl")?;
    let ssl_set = k.resolved.iter().any(|r| r.key == "ssl" && !r.defaulted);
    let old_ssl = match k.opt_str("enableSSL")? {
        Some(_) => k.bool("enableSSL")?,
        None => false,
    };
    let ssl = if ssl_set { ssl } else { old_ssl };
    let [g_path, g_password, g_type] = tls::KEYSTORE_GLOBALS;
    let path = tls::key_or_global(k, "keystore", g_path)?;
    let password = match k.opt_str("keystore-password")? {
        Some(p) => Some(p),
        None => tls::key_or_global(k, "keystorePassword", g_password)?,
    };
    let store_type = tls::key_or_global(k, "keystore-type", g_type)?;
    let mut filters = tls::filters_from_keys(k)?;
    let old_exclude = k.list("excludeProtocols")?;
    if !k
        .resolved
        .iter()
        .any(|r| r.key == "exclude-protocols" && !r.defaulted)
    {
        filters.exclude_protocols.extend(old_exclude);
    }
    tls::server_from_values(k, ssl, path, password, store_type, &filters)
}

impl SourceType for HttpSourceConfig {
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

async fn run(l: TcpListening<HttpSourceConfig>, ctx: Rc<SourceCtx>) {
    let cfg = Rc::new(l.cfg);
    let budget = Budget::new(cfg.max_buffered);
    super::accept_loop(l.listener, &ctx, |stream, peer| {
        let (ctx, cfg) = (ctx.clone(), cfg.clone());
        let hold = Hold::new(&budget);
        Some(async move { conn::serve(stream, peer, &cfg, &ctx, hold).await })
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::from_pairs;

    fn build(pairs: &[(&str, &str)]) -> Result<HttpSourceConfig, ConfigError> {
        from_pairs("a1.sources.r1", pairs)
    }

    #[test]
    fn defaults_are_flumes_json_handler_on_all_addresses() {
        let c = build(&[("port", "8080")]).unwrap();
        assert_eq!(c.bind, "0.0.0.0");
        assert_eq!(c.handler, Handler::Json);
        assert!(c.tls.is_none());
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn handlers_and_their_settings() {
        let c = build(&[
            ("port", "1"),
            ("handler", "org.apache.flume.source.http.BLOBHandler"),
            ("handler.mandatoryParameters", "a, b"),
        ])
        .unwrap();
        assert_eq!(
            c.handler,
            Handler::Blob {
                mandatory: vec!["a".into(), "b".into()]
            }
        );
        let c = build(&[
            ("port", "1"),
            (
                "handler",
                "org.apache.flume.sink.solr.morphline.BlobHandler",
            ),
            ("handler.maxBlobLength", "10"),
        ])
        .unwrap();
        assert_eq!(
            c.handler,
            Handler::MorphlineBlob {
                max_blob_length: 10
            }
        );
        let e = build(&[
            ("port", "1"),
            (
                "handler",
                "org.apache.flume.sink.solr.morphline.BlobHandler",
            ),
            ("handler.maxBlobLength", "0"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("a.conf:12") && e.contains("maxBlobLength"),
            "{e}"
        );
        let e = build(&[("port", "1"), ("handler", "com.example.Mine")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.conf:11") && e.contains("unknown handler"),
            "{e}"
        );
    }

    #[test]
    fn ssl_needs_a_keystore_and_enable_ssl_is_its_old_name() {
        let e = build(&[("port", "1"), ("enableSSL", "true")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("keystore"), "{e}");
        let e = build(&[("port", "1"), ("ssl", "true")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("keystore"), "{e}");
        assert!(build(&[("port", "1"), ("ssl", "false"), ("enableSSL", "true")]).is_ok());
    }
}
