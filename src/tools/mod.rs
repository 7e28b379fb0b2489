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
    /// An option the system refuses (a usage error, not a failure of the run).
    #[error("{0}")]
    Option(String),
}

/// The TLS options of `avro-client` and `loadgen`, named after the avro sink's keys.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ssl: bool,
    pub trust_all_certs: bool,
    pub truststore: Option<std::path::PathBuf>,
    pub truststore_password: Option<String>,
    pub truststore_type: Option<String>,
}

impl TlsOptions {
    /// The client side TLS these options ask for, checked as the avro sink checks its
    /// keys (a wrong password or a JKS file is an error here, before connecting).
    pub fn client(&self, host: &str) -> Result<crate::avro_rpc::conn::Tls, String> {
        use crate::avro_rpc::tls::{self, Filters, Store, Trust};
        if !self.ssl {
            return Ok(crate::avro_rpc::conn::Tls::None);
        }
        let trust = match (&self.truststore, self.trust_all_certs) {
            (_, true) => Trust::All,
            (Some(path), false) => Trust::Store(Store {
                path: path.clone(),
                password: self.truststore_password.clone(),
                store_type: self.truststore_type.clone().unwrap_or_else(|| "JKS".into()),
            }),
            (None, false) => Trust::System,
        };
        let config = tls::client_config(&trust, &Filters::default()).map_err(|e| e.to_string())?;
        Ok(crate::avro_rpc::conn::Tls::Client {
            config,
            host: host.to_string(),
        })
    }
}
