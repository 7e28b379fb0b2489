//! Flume's Avro RPC on the wire, shared by the avro source, the avro sink, `avro-client`
//! and `loadgen`. Sans-IO at the core (`frame`, `binary`, `protocol`, `codec`, `server`,
//! `client`, `deflate`: bytes in, values out, and back), with one thin async layer
//! (`conn`) over tokio-uring sockets that also drives TLS (rustls, configured by `tls`).

pub mod binary;
pub mod client;
pub mod codec;
pub mod conn;
pub mod deflate;
pub mod frame;
pub mod protocol;
pub mod server;
pub mod tls;

/// Default bound on one frame's payload: a batch larger than this closes the connection.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;
