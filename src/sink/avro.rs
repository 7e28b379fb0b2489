//! The avro sink (`avro`, `org.apache.flume.sink.AvroSink`): sends each batch to another
//! agent's avro source as one `appendBatch` call and reports success only when the peer
//! answered OK, so the runner commits the take only then. FAILED, an error reply, a
//! timeout or a broken connection are errors: the runner rolls back and backs off, and the
//! next batch reconnects.

use super::{LocalBoxFuture, ShardSink, SinkError, SinkType};
use crate::avro_rpc::client::{ClientConn, ClientReply};
use crate::avro_rpc::conn::{self, Compression, Conn, ReadError, Tls};
use crate::avro_rpc::protocol::Status;
use crate::avro_rpc::tls::{self, Trust};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use bytes::BytesMut;
use std::time::Duration;
use tokio::time::Instant;

const KEYS: &[KeySpec] = &[
    KeySpec::required("hostname", KeyKind::Str, "Host name or IP address of the avro source to send to"),
    KeySpec::required("port", KeyKind::PORT, "Port of the avro source"),
    KeySpec::new("batch-size", KeyKind::POSITIVE, Some("100"), "Events per take transaction and per appendBatch call"),
    KeySpec::new("connect-timeout", KeyKind::POSITIVE, Some("20000"), "Milliseconds to wait for the connection and handshake"),
    KeySpec::new("request-timeout", KeyKind::POSITIVE, Some("20000"), "Milliseconds to wait for the answer to a batch"),
    KeySpec::new(
        "reset-connection-interval",
        KeyKind::NON_NEGATIVE,
        Some("0"),
        "Seconds after which the connection is replaced by a new one (lets a load balancer rebalance); 0 never",
    ),
    KeySpec::new(
        "compression-type",
        KeyKind::Choice(&["none", "deflate"]),
        Some("none"),
        "deflate: the connection is a zlib stream both ways (the source must match)",
    ),
    KeySpec::new("compression-level", KeyKind::int(0, 9), Some("6"), "zlib level for deflate (0 none .. 9 best)"),
    KeySpec::new("ssl", KeyKind::Bool, Some("false"), "Connect with TLS (rustls: TLSv1.2 and TLSv1.3)"),
    KeySpec::new(
        "trust-all-certs",
        KeyKind::Bool,
        Some("false"),
        "Accept any server certificate (as Flume's permissive trust manager); otherwise truststore, or the system CA certificates",
    ),
    KeySpec::new(
        "truststore",
        KeyKind::Str,
        None,
        "PKCS12 file whose certificates are trusted (a server certificate in it, or one chaining to one, is accepted; the host name is not checked, as in Flume); unset: the system CA certificates; when unset: -Djavax.net.ssl.trustStore, else $FLUME_SSL_TRUSTSTORE_PATH",
    ),
    KeySpec::new("truststore-password", KeyKind::Str, None, "Password of truststore; when unset: -Djavax.net.ssl.trustStorePassword, else $FLUME_SSL_TRUSTSTORE_PASSWORD"),
    KeySpec::new(
        "truststore-type",
        KeyKind::Str,
        None,
        "PKCS12, or JKS (Flume's default) naming a PKCS12 file as Java 9+ reads it; a real JKS file is refused with the keytool command that converts it; when unset: -Djavax.net.ssl.trustStoreType, else $FLUME_SSL_TRUSTSTORE_TYPE",
    ),
    crate::avro_rpc::tls::EXCLUDE_PROTOCOLS,
    crate::avro_rpc::tls::INCLUDE_PROTOCOLS,
    crate::avro_rpc::tls::EXCLUDE_CIPHER_SUITES,
    crate::avro_rpc::tls::INCLUDE_CIPHER_SUITES,
    KeySpec::ignored("maxIoWorkers", "Netty I/O threads (flume-fast uses the shard's own loop)"),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["avro"],
    class: "org.apache.flume.sink.AvroSink",
    doc: "Sends events to another agent's avro source over Flume's Avro RPC.",
    keys: KEYS,
};

/// Replies are a few bytes; anything near this is not a reply.
const MAX_REPLY_FRAME: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct AvroSinkConfig {
    pub hostname: String,
    pub port: u16,
    pub batch_size: usize,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub reset_interval: Option<Duration>,
    pub compression: Compression,
    pub tls: Tls,
}

impl Component for AvroSinkConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let hostname = k.str("hostname")?;
        let port = k.int("port")? as u16;
        let batch_size = k.usize("batch-size")?;
        let connect_timeout = k.millis("connect-timeout")?;
        let request_timeout = k.millis("request-timeout")?;
        let reset = k.secs("reset-connection-interval")?;
        let deflate = k.choice("compression-type")? == "deflate";
        let level = k.int("compression-level")? as u32;
        let tls = client_tls(k, &hostname)?;
        Ok(AvroSinkConfig {
            hostname,
            port,
            batch_size,
            connect_timeout,
            request_timeout,
            reset_interval: (!reset.is_zero()).then_some(reset),
            compression: if deflate {
                Compression::Deflate(level)
            } else {
                Compression::None
            },
            tls,
        })
    }
}

impl SinkType for AvroSinkConfig {
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Connects on the first batch, so a peer that is down does not stop the agent.
    fn open(&self, _: &str, _: usize, _: usize) -> Result<Box<dyn ShardSink>, SinkError> {
        Ok(Box::new(AvroSink::new(self)))
    }
}

impl AvroSinkConfig {
    fn target(&self) -> String {
        format!("{}:{}", self.hostname, self.port)
    }
}

/// `ssl` and the trust keys, as Flume's `SSLContextAwareAbstractRpcClient` reads them:
/// trust-all-certs wins over truststore; with neither, the system's CA certificates.
fn client_tls(k: &mut Keys, hostname: &str) -> Result<Tls, ConfigError> {
    let ssl = k.bool("ssl")?;
    let trust_all = k.bool("trust-all-certs")?;
    let [g_path, g_password, g_type] = tls::TRUSTSTORE_GLOBALS;
    let path = tls::key_or_global(k, "truststore", g_path)?;
    let password = tls::key_or_global(k, "truststore-password", g_password)?;
    let store_type = tls::key_or_global(k, "truststore-type", g_type)?;
    let filters = tls::filters_from_keys(k)?;
    if !ssl {
        return Ok(Tls::None);
    }
    let trust = match (trust_all, path) {
        (true, _) => Trust::All,
        (false, Some(path)) => Trust::Store(tls::Store {
            path: path.into(),
            password,
            store_type: store_type.unwrap_or_else(|| "JKS".into()),
        }),
        (false, None) => Trust::System,
    };
    let config = tls::client_config(&trust, &filters).map_err(|e| {
        tls::config_error(
            k,
            &e,
            ["truststore", "truststore-password", "truststore-type"],
        )
    })?;
    Ok(Tls::Client {
        config,
        host: hostname.to_string(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AvroSinkError {
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        source: conn::OpenError,
    },
    #[error("{target} answered {status:?} (its channel refused the batch)")]
    Refused { target: String, status: Status },
    #[error("no answer from {target} within {timeout:?}")]
    Timeout { target: String, timeout: Duration },
    #[error("connection to {target} failed: {msg}")]
    Connection { target: String, msg: String },
}

struct Connected {
    conn: Conn,
    client: ClientConn,
    since: Instant,
    /// When the last call on it ended.
    used: Instant,
    buf: BytesMut,
}

/// A connection quiet for this long is checked for a close by the peer before it is used
/// (see `AvroSink::process`); busier ones are not, so a steady flow pays no system call.
const QUIET: Duration = Duration::from_secs(1);

pub struct AvroSink {
    cfg: AvroSinkConfig,
    conn: Option<Connected>,
}

impl AvroSink {
    pub fn new(cfg: &AvroSinkConfig) -> Self {
        AvroSink {
            cfg: cfg.clone(),
            conn: None,
        }
    }

    pub async fn process(&mut self, events: &[Event]) -> Result<(), AvroSinkError> {
        if events.is_empty() {
            return Ok(());
        }
        if let (Some(c), Some(every)) = (&self.conn, self.cfg.reset_interval) {
            if c.since.elapsed() >= every {
                tracing::debug!("resetting the connection to {}", self.cfg.target());
                self.conn = None;
            }
        }
        // An avro source closes connections idle for its idle-timeout. Avro's
        // NettyTransceiver (Java Flume's client) sees the close when it happens and
        // reconnects on its next call; do the same, rather than fail a batch on it.
        if let Some(c) = &self.conn {
            if c.used.elapsed() >= QUIET && c.conn.peer_closed() {
                tracing::debug!(
                    "{} closed the idle connection; reconnecting",
                    self.cfg.target()
                );
                self.conn = None;
            }
        }
        if self.conn.is_none() {
            let conn = conn::open(
                &self.cfg.hostname,
                self.cfg.port,
                self.cfg.connect_timeout,
                MAX_REPLY_FRAME,
                self.cfg.compression,
                &self.cfg.tls,
            )
            .await
            .map_err(|source| AvroSinkError::Connect {
                target: self.cfg.target(),
                source,
            })?;
            self.conn = Some(Connected {
                conn,
                client: ClientConn::new(false),
                since: Instant::now(),
                used: Instant::now(),
                buf: BytesMut::new(),
            });
        }
        let c = self.conn.as_mut().expect("connected above");
        // The first call also carries the handshake: give it the connect timeout too.
        let timeout = if c.client.established() {
            self.cfg.request_timeout
        } else {
            self.cfg.request_timeout + self.cfg.connect_timeout
        };
        let target = self.cfg.target();
        let result = match tokio::time::timeout(timeout, call(c, events, &target)).await {
            Ok(r) => {
                c.used = Instant::now();
                r
            }
            Err(_) => Err(AvroSinkError::Timeout {
                target: self.cfg.target(),
                timeout,
            }),
        };
        match result {
            Ok(Status::Ok) => Ok(()),
            Ok(status) => Err(AvroSinkError::Refused {
                target: self.cfg.target(),
                status,
            }),
            Err(e) => {
                // Whatever state the stream is in, it cannot be trusted: start afresh.
                self.conn = None;
                Err(e)
            }
        }
    }

    pub fn close(&mut self) {
        self.conn = None;
    }
}

impl ShardSink for AvroSink {
    fn process<'a>(&'a mut self, events: &'a [Event]) -> LocalBoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            AvroSink::process(self, events)
                .await
                .map_err(SinkError::other)
        })
    }

    /// Nothing is time-driven: a connection is reset or replaced when a batch comes.
    fn next_tick(&self) -> Option<Instant> {
        None
    }

    fn tick(&mut self) -> LocalBoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn close(&mut self) -> LocalBoxFuture<'_, ()> {
        AvroSink::close(self);
        Box::pin(std::future::ready(()))
    }
}

/// One call: send the batch, read the answer (resending once with our protocol if the
/// server asks for it).
async fn call(c: &mut Connected, events: &[Event], target: &str) -> Result<Status, AvroSinkError> {
    let broken = |msg: String| AvroSinkError::Connection {
        target: target.to_string(),
        msg,
    };
    for _ in 0..2 {
        let mut buf = std::mem::take(&mut c.buf);
        c.client.encode_batch(events, &mut buf);
        c.buf = c
            .conn
            .send(buf)
            .await
            .map_err(|e| broken(format!("write failed: {e}")))?;
        let frame = match c.conn.next().await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(broken("the peer closed the connection".into())),
            Err(ReadError::Io(e)) => return Err(broken(format!("read failed: {e}"))),
            Err(e) => return Err(broken(e.to_string())),
        };
        match c.client.on_frame(&frame) {
            Ok(ClientReply::Status { status, .. }) => return Ok(status),
            Ok(ClientReply::Resend) => continue,
            Err(e) => return Err(broken(e.to_string())),
        }
    }
    Err(broken("handshake did not complete".into()))
}
