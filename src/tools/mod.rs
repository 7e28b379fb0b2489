//! Command-line tools built on the library: `avro-client` (flume-ng avro-client's
//! equivalent) and `loadgen` (the load generator every benchmark uses).

pub mod avro_client;
pub mod loadgen;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot read input: {0}")]
    Input(String),
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error("{0}")]
    Rpc(String),
}
