//! TLS settings for Flume's Avro RPC, made the way Java Flume 1.11 makes them: the server's
//! key and chain from a PKCS12 keystore, the client's trust from a PKCS12 truststore (or
//! the system's CA certificates, or nothing with `trust-all-certs`), and Flume's
//! `include-`/`exclude-` filters over protocols and cipher suites. Connections themselves
//! are driven in `conn`; this module only builds rustls configurations, at configuration
//! time, so a bad keystore is a configuration error and not a failed connection later.
//!
//! Java compatibility notes, each a deliberate match of Flume 1.11:
//! - The client checks the server's chain against its trust but NOT the host name:
//!   `NettyAvroRpcClient` creates its `SSLEngine` without a peer host and sets no endpoint
//!   identification algorithm, so Java never compares the certificate with `hostname`.
//! - A certificate that is itself in the truststore is trusted as is (Java's trust
//!   manager accepts a chain whose first certificate is a trusted entry), which is how
//!   the usual self-signed `keytool -genkeypair` set-ups work.
//! - `trust-all-certs` accepts any certificate, as Flume's `PermissiveTrustManager`; the
//!   handshake signature is still checked (JSSE does too).
//! - `keystore-type`/`truststore-type` JKS (Flume's default) reads a PKCS12 file, as a
//!   Java 9+ `KeyStore.getInstance("JKS")` does; a real JKS file is refused with the keytool
//!   command that converts it.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The protocols rustls speaks, by Java's names.
const PROTOCOLS: &[(&str, &rustls::SupportedProtocolVersion)] = &[
    ("TLSv1.3", &rustls::version::TLS13),
    ("TLSv1.2", &rustls::version::TLS12),
];

/// Which user setting a `TlsError` is about, so the caller can point at its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Store,
    Password,
    StoreType,
    Protocols,
    CipherSuites,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is a JKS keystore, which flume-fast does not read; convert it to PKCS12 with \
         `keytool -importkeystore -srckeystore {} -destkeystore {}.p12 -deststoretype PKCS12` \
         and point the configuration at the .p12 file",
        path.display(), path.display(), stem(path)
    )]
    Jks { path: PathBuf },
    #[error("store type '{0}' is not supported: use PKCS12 (or JKS naming a PKCS12 file)")]
    Type(String),
    #[error("cannot open {}: wrong password (the PKCS12 integrity check failed)", path.display())]
    Password { path: PathBuf },
    #[error("{} is not a readable PKCS12 store: {msg}", path.display())]
    Parse { path: PathBuf, msg: String },
    #[error("{} holds no private key entry (the server needs its key and certificate)", path.display())]
    NoKey { path: PathBuf },
    #[error("the key in {} cannot be used: {msg}", path.display())]
    Key { path: PathBuf, msg: String },
    #[error("{} holds no trusted certificate", path.display())]
    NoTrust { path: PathBuf },
    #[error(
        "no truststore is set and no system CA certificates were found ({0}); set truststore, \
         or trust-all-certs = true"
    )]
    NoSystemRoots(String),
    #[error(
        "no protocol is left after the include/exclude filters (rustls speaks TLSv1.2 and TLSv1.3)"
    )]
    NoProtocol,
    #[error("no usable cipher suite is left after the include/exclude filters: {0}")]
    NoCipherSuite(String),
}

impl TlsError {
    pub fn setting(&self) -> Setting {
        match self {
            TlsError::Read { .. }
            | TlsError::Jks { .. }
            | TlsError::Parse { .. }
            | TlsError::NoKey { .. }
            | TlsError::Key { .. }
            | TlsError::NoTrust { .. }
            | TlsError::NoSystemRoots(_) => Setting::Store,
            TlsError::Password { .. } => Setting::Password,
            TlsError::Type(_) => Setting::StoreType,
            TlsError::NoProtocol => Setting::Protocols,
            TlsError::NoCipherSuite(_) => Setting::CipherSuites,
        }
    }
}

fn stem(path: &Path) -> String {
    path.with_extension("").display().to_string()
}

/// A key or trust store as Flume names it: path, password, type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub path: PathBuf,
    pub password: Option<String>,
    /// As configured (Flume's default is JKS); checked by `open`.
    pub store_type: String,
}

/// Flume's `include-protocols`, `exclude-protocols`, `include-cipher-suites` and
/// `exclude-cipher-suites` (Java names: TLSv1.2, TLS_AES_128_GCM_SHA256, ...). An empty
/// include list includes everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub include_protocols: Vec<String>,
    pub exclude_protocols: Vec<String>,
    pub include_cipher_suites: Vec<String>,
    pub exclude_cipher_suites: Vec<String>,
}

fn passes(name: &str, include: &[String], exclude: &[String]) -> bool {
    (include.is_empty() || include.iter().any(|i| i == name)) && !exclude.iter().any(|e| e == name)
}

/// Java's (IANA) name of a rustls suite: rustls spells TLS 1.3 suites `TLS13_...`.
fn java_suite_name(suite: rustls::CipherSuite) -> String {
    let name = suite
        .as_str()
        .map_or_else(|| format!("{suite:?}"), str::to_string);
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

impl Filters {
    fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
        let v: Vec<_> = PROTOCOLS
            .iter()
            .filter(|(name, _)| passes(name, &self.include_protocols, &self.exclude_protocols))
            .map(|(_, v)| *v)
            .collect();
        if v.is_empty() {
            return Err(TlsError::NoProtocol);
        }
        Ok(v)
    }

    fn provider(&self) -> Result<Arc<CryptoProvider>, TlsError> {
        let mut p = rustls::crypto::ring::default_provider();
        p.cipher_suites.retain(|s| {
            passes(
                &java_suite_name(s.suite()),
                &self.include_cipher_suites,
                &self.exclude_cipher_suites,
            )
        });
        if p.cipher_suites.is_empty() {
            let known: Vec<_> = rustls::crypto::ring::default_provider()
                .cipher_suites
                .iter()
                .map(|s| java_suite_name(s.suite()))
                .collect();
            return Err(TlsError::NoCipherSuite(format!(
                "rustls offers {}",
                known.join(" ")
            )));
        }
        Ok(Arc::new(p))
    }
}

const JKS_MAGIC: [u8; 4] = [0xFE, 0xED, 0xFE, 0xED];
const JCEKS_MAGIC: [u8; 4] = [0xCE, 0xCE, 0xCE, 0xCE];

/// Reads and decrypts a PKCS12 store.
fn open(store: &Store) -> Result<p12_keystore::KeyStore, TlsError> {
    let ty = store.store_type.to_ascii_uppercase();
    if !matches!(ty.as_str(), "PKCS12" | "JKS") {
        return Err(TlsError::Type(store.store_type.clone()));
    }
    let data = crate::config::file::read_regular(&store.path, crate::config::file::MAX_STORE_BYTES)
        .map_err(|source| TlsError::Read {
            path: store.path.clone(),
            source,
        })?;
    if data.starts_with(&JKS_MAGIC) || data.starts_with(&JCEKS_MAGIC) {
        return Err(TlsError::Jks {
            path: store.path.clone(),
        });
    }
    let password = store.password.as_deref().unwrap_or("");
    p12_keystore::KeyStore::from_pkcs12(&data, password, p12_keystore::Pkcs12ImportPolicy::Relaxed)
        .map_err(|e| match e {
            p12_keystore::error::Error::MacError(_) => TlsError::Password {
                path: store.path.clone(),
            },
            other => TlsError::Parse {
                path: store.path.clone(),
                msg: other.to_string(),
            },
        })
}

/// The server side: the first private-key entry of the keystore and its chain.
pub fn server_config(keystore: &Store, filters: &Filters) -> Result<Arc<ServerConfig>, TlsError> {
    let ks = open(keystore)?;
    let (_, chain) = ks.private_key_chain().ok_or_else(|| TlsError::NoKey {
        path: keystore.path.clone(),
    })?;
    let key_err = |msg: String| TlsError::Key {
        path: keystore.path.clone(),
        msg,
    };
    if chain.certs().is_empty() {
        return Err(key_err("the key entry has no certificate".into()));
    }
    let certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    let cfg = ServerConfig::builder_with_provider(filters.provider()?)
        .with_protocol_versions(&filters.versions()?)
        .map_err(|e| TlsError::NoCipherSuite(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| key_err(e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// Whom the client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// `trust-all-certs = true`.
    All,
    /// `truststore` (or the Java/Flume global setting).
    Store(Store),
    /// Neither: the system's CA certificates (as Java's default `cacerts`).
    System,
}

/// The client side, checking the server as Flume's `NettyAvroRpcClient` does.
pub fn client_config(trust: &Trust, filters: &Filters) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = filters.provider()?;
    let algs = provider.signature_verification_algorithms;
    let verifier = match trust {
        Trust::All => JavaLikeVerifier {
            roots: None,
            pinned: Vec::new(),
            algs,
        },
        Trust::Store(store) => {
            let ks = open(store)?;
            let mut pinned = Vec::new();
            for (_, entry) in ks.entries() {
                match entry {
                    p12_keystore::KeyStoreEntry::Certificate(c) => pinned.push(c.as_der()),
                    // Java trusts the certificate of a key entry in a truststore too.
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(k) => {
                        pinned.extend(k.certs().first().map(|c| c.as_der()))
                    }
                    _ => {}
                }
            }
            if pinned.is_empty() {
                return Err(TlsError::NoTrust {
                    path: store.path.clone(),
                });
            }
            let pinned: Vec<CertificateDer<'static>> = pinned
                .into_iter()
                .map(|d| CertificateDer::from(d.to_vec()))
                .collect();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(pinned.iter().cloned());
            JavaLikeVerifier {
                roots: Some(Arc::new(roots)),
                pinned,
                algs,
            }
        }
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none installed".to_string(), |e| e.to_string());
                return Err(TlsError::NoSystemRoots(why));
            }
            JavaLikeVerifier {
                roots: Some(Arc::new(roots)),
                pinned: Vec::new(),
                algs,
            }
        }
    };
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&filters.versions()?)
        .map_err(|e| TlsError::NoCipherSuite(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The name a client connection presents (SNI for DNS names); never checked against the
/// certificate, see the module doc.
pub fn server_name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("flume-fast.invalid").expect("a valid DNS name"))
}

/// Java's default trust manager as Flume uses it: the server's certificate is one of the
/// trusted ones, or chains to one (webpki: signatures, validity dates, key usage); no host
/// name check. `roots: None` trusts everything.
#[derive(Debug)]
struct JavaLikeVerifier {
    roots: Option<Arc<RootCertStore>>,
    pinned: Vec<CertificateDer<'static>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for JavaLikeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

// ---- Flume's keys, shared by the avro source and sink -------------------------------

use crate::config::keys::{KeyKind, KeySpec, Keys};
use crate::config::ConfigError;

static JAVA_PROPERTIES: std::sync::OnceLock<std::collections::HashMap<String, String>> =
    std::sync::OnceLock::new();

/// Takes the command line's `-DNAME=VALUE` pairs as Java system properties, for Flume's
/// global SSL settings (`-Djavax.net.ssl.keyStore=...`). Set once, before the
/// configuration is loaded; later calls are ignored.
pub fn set_java_properties(defines: &std::collections::HashMap<String, String>) {
    let _ = JAVA_PROPERTIES.set(defines.clone());
}

/// Flume 1.11's global settings (`SSLUtil`): the Java system property `prop`, else the
/// environment variable `env` that Flume's start-up copies into it.
fn global(prop: &str, env: &str) -> Option<String> {
    JAVA_PROPERTIES
        .get()
        .and_then(|p| p.get(prop).cloned())
        .or_else(|| std::env::var(env).ok())
}

/// A key's value, or else Flume's global setting `global` (a Java system property name
/// and its `FLUME_SSL_*` environment variable).
pub fn key_or_global(
    k: &mut Keys,
    key: &str,
    global_names: (&str, &str),
) -> Result<Option<String>, ConfigError> {
    Ok(k.opt_str(key)?
        .or_else(|| global(global_names.0, global_names.1))
        .filter(|v| !v.trim().is_empty()))
}

fn list_or_global(k: &mut Keys, key: &str, g: (&str, &str)) -> Result<Vec<String>, ConfigError> {
    Ok(key_or_global(k, key, g)?
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default())
}

/// The global names of the store settings, as Flume's `SSLUtil` has them.
pub const KEYSTORE_GLOBALS: [(&str, &str); 3] = [
    ("javax.net.ssl.keyStore", "FLUME_SSL_KEYSTORE_PATH"),
    (
        "javax.net.ssl.keyStorePassword",
        "FLUME_SSL_KEYSTORE_PASSWORD",
    ),
    ("javax.net.ssl.keyStoreType", "FLUME_SSL_KEYSTORE_TYPE"),
];
pub const TRUSTSTORE_GLOBALS: [(&str, &str); 3] = [
    ("javax.net.ssl.trustStore", "FLUME_SSL_TRUSTSTORE_PATH"),
    (
        "javax.net.ssl.trustStorePassword",
        "FLUME_SSL_TRUSTSTORE_PASSWORD",
    ),
    ("javax.net.ssl.trustStoreType", "FLUME_SSL_TRUSTSTORE_TYPE"),
];

/// The four filter keys (with their global fallbacks); SSLv3 is always excluded,
/// as Flume's sets start with it (rustls never speaks it anyway).
pub fn filters_from_keys(k: &mut Keys) -> Result<Filters, ConfigError> {
    let mut exclude_protocols = vec!["SSLv3".to_string()];
    exclude_protocols.extend(list_or_global(
        k,
        "exclude-protocols",
        ("flume.ssl.exclude.protocols", "FLUME_SSL_EXCLUDE_PROTOCOLS"),
    )?);
    Ok(Filters {
        include_protocols: list_or_global(
            k,
            "include-protocols",
            ("flume.ssl.include.protocols", "FLUME_SSL_INCLUDE_PROTOCOLS"),
        )?,
        exclude_protocols,
        include_cipher_suites: list_or_global(
            k,
            "include-cipher-suites",
            (
                "flume.ssl.include.cipherSuites",
                "FLUME_SSL_INCLUDE_CIPHERSUITES",
            ),
        )?,
        exclude_cipher_suites: list_or_global(
            k,
            "exclude-cipher-suites",
            (
                "flume.ssl.exclude.cipherSuites",
                "FLUME_SSL_EXCLUDE_CIPHERSUITES",
            ),
        )?,
    })
}

/// A `TlsError` as a configuration error at the key it is about. `store_keys` names the
/// store's path, password and type keys (`keystore...` or `truststore...`).
pub fn config_error(k: &Keys, e: &TlsError, store_keys: [&'static str; 3]) -> ConfigError {
    let set = |key: &str| k.resolved.iter().any(|r| r.key == key && !r.defaulted);
    let set_or = |a: &'static str, b: &'static str| if set(a) || !set(b) { a } else { b };
    let key = match e.setting() {
        Setting::Store => store_keys[0],
        Setting::Password => store_keys[1],
        Setting::StoreType => store_keys[2],
        Setting::Protocols => set_or("include-protocols", "exclude-protocols"),
        Setting::CipherSuites => set_or("include-cipher-suites", "exclude-cipher-suites"),
    };
    k.invalid(key, e.to_string())
}

/// The protocol and cipher-suite filters, the same keys on the avro source and sink.
pub const EXCLUDE_PROTOCOLS: KeySpec = KeySpec::new(
    "exclude-protocols",
    KeyKind::List,
    None,
    "Protocols to disable (Java names: TLSv1.2 TLSv1.3); SSLv3 is always excluded; when unset: -Dflume.ssl.exclude.protocols, else $FLUME_SSL_EXCLUDE_PROTOCOLS",
);
pub const INCLUDE_PROTOCOLS: KeySpec = KeySpec::new(
    "include-protocols",
    KeyKind::List,
    None,
    "Protocols to allow (unset: TLSv1.2 and TLSv1.3, all rustls speaks); when unset: -Dflume.ssl.include.protocols, else $FLUME_SSL_INCLUDE_PROTOCOLS",
);
pub const EXCLUDE_CIPHER_SUITES: KeySpec = KeySpec::new(
    "exclude-cipher-suites",
    KeyKind::List,
    None,
    "Cipher suites to disable (IANA/Java names); when unset: -Dflume.ssl.exclude.cipherSuites, else $FLUME_SSL_EXCLUDE_CIPHERSUITES",
);
pub const INCLUDE_CIPHER_SUITES: KeySpec = KeySpec::new(
    "include-cipher-suites",
    KeyKind::List,
    None,
    "Cipher suites to allow (unset: every suite rustls offers); when unset: -Dflume.ssl.include.cipherSuites, else $FLUME_SSL_INCLUDE_CIPHERSUITES",
);

// ---- A TLS server's keys, shared by the avro and syslog sources ----------------------

/// `ssl` and the keystore keys of a source that serves TLS (Flume's
/// `SslContextAwareAbstractSource`), with the four filter keys above.
pub const SSL: KeySpec = KeySpec::new(
    "ssl",
    KeyKind::Bool,
    Some("false"),
    "Serve TLS (rustls: TLSv1.2 and TLSv1.3) with the key of keystore",
);
pub const KEYSTORE: KeySpec = KeySpec::new(
    "keystore",
    KeyKind::Str,
    None,
    "PKCS12 file with the server's private key and certificate chain (its first key entry); when unset: -Djavax.net.ssl.keyStore, else $FLUME_SSL_KEYSTORE_PATH",
);
pub const KEYSTORE_PASSWORD: KeySpec = KeySpec::new(
    "keystore-password",
    KeyKind::Str,
    None,
    "Password of keystore (required with ssl); when unset: -Djavax.net.ssl.keyStorePassword, else $FLUME_SSL_KEYSTORE_PASSWORD",
);
pub const KEYSTORE_TYPE: KeySpec = KeySpec::new(
    "keystore-type",
    KeyKind::Str,
    None,
    "PKCS12, or JKS (Flume's default) naming a PKCS12 file as Java 9+ reads it; a real JKS file is refused with the keytool command that converts it; when unset: -Djavax.net.ssl.keyStoreType, else $FLUME_SSL_KEYSTORE_TYPE",
);

/// `ssl`, the keystore keys and the filters: the server's configuration when `ssl` is
/// true. The keystore is opened now, so a wrong password or an unreadable file stops the
/// agent at start-up with the key's file and line.
pub fn server_from_keys(k: &mut Keys) -> Result<Option<Arc<ServerConfig>>, ConfigError> {
    let ssl = k.bool("ssl")?;
    let [g_path, g_password, g_type] = KEYSTORE_GLOBALS;
    let path = key_or_global(k, "keystore", g_path)?;
    let password = key_or_global(k, "keystore-password", g_password)?;
    let store_type = key_or_global(k, "keystore-type", g_type)?;
    let filters = filters_from_keys(k)?;
    server_from_values(k, ssl, path, password, store_type, &filters)
}

/// The server's configuration from values already read (a source with other spellings of
/// the keys, like the http source's, reads them itself): none without `ssl`, else the
/// keystore opened now, its errors naming the keystore keys.
pub fn server_from_values(
    k: &Keys,
    ssl: bool,
    path: Option<String>,
    password: Option<String>,
    store_type: Option<String>,
    filters: &Filters,
) -> Result<Option<Arc<ServerConfig>>, ConfigError> {
    if !ssl {
        return Ok(None);
    }
    let Some(path) = path else {
        return Err(k.invalid(
            "keystore",
            "ssl = true needs keystore: a PKCS12 file with the server's key and certificate",
        ));
    };
    if password.is_none() {
        return Err(k.invalid("keystore-password", "ssl = true needs keystore-password"));
    }
    let store = Store {
        path: path.into(),
        password,
        store_type: store_type.unwrap_or_else(|| "JKS".into()),
    };
    server_config(&store, filters)
        .map(Some)
        .map_err(|e| config_error(k, &e, ["keystore", "keystore-password", "keystore-type"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p12_keystore::{Certificate, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    struct Made {
        dir: tempfile::TempDir,
    }

    impl Made {
        fn new() -> Made {
            Made {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn keystore(&self, name: &str, chain: &[&[u8]], key: &[u8], password: &str) -> Store {
            let mut ks = p12_keystore::KeyStore::new();
            let entry = PrivateKeyChain::new(
                b"1".as_slice(),
                PrivateKey::from_der(key).unwrap(),
                chain.iter().map(|c| Certificate::from_der(c).unwrap()),
            );
            ks.add_entry("server", KeyStoreEntry::PrivateKeyChain(entry));
            self.write(name, &ks, password)
        }

        fn truststore(&self, name: &str, certs: &[&[u8]], password: &str) -> Store {
            let mut ks = p12_keystore::KeyStore::new();
            for (i, c) in certs.iter().enumerate() {
                let entry = KeyStoreEntry::Certificate(Certificate::from_der(c).unwrap());
                ks.add_entry(&format!("ca{i}"), entry);
            }
            self.write(name, &ks, password)
        }

        fn write(&self, name: &str, ks: &p12_keystore::KeyStore, password: &str) -> Store {
            let path = self.dir.path().join(name);
            std::fs::write(&path, ks.writer(password).write().unwrap()).unwrap();
            Store {
                path,
                password: Some(password.into()),
                store_type: "PKCS12".into(),
            }
        }
    }

    fn self_signed(names: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let c = rcgen::generate_simple_self_signed(names).unwrap();
        (c.cert.der().to_vec(), c.signing_key.serialize_der())
    }

    /// An in-memory handshake between the two configurations.
    fn handshake(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        name: &str,
    ) -> Result<(), rustls::Error> {
        let c = rustls::ClientConnection::new(client, server_name(name))?;
        let s = rustls::ServerConnection::new(server)?;
        fn pass(
            from: &mut rustls::Connection,
            to: &mut rustls::Connection,
        ) -> Result<(), rustls::Error> {
            let mut buf = Vec::new();
            while from.wants_write() {
                from.write_tls(&mut buf).unwrap();
            }
            let mut rest = &buf[..];
            while !rest.is_empty() {
                to.read_tls(&mut rest).unwrap();
                to.process_new_packets()?;
            }
            Ok(())
        }
        let (mut c, mut s) = (rustls::Connection::from(c), rustls::Connection::from(s));
        for _ in 0..10 {
            pass(&mut c, &mut s)?;
            pass(&mut s, &mut c)?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn a_pinned_self_signed_certificate_is_trusted_whatever_the_host_name() {
        let made = Made::new();
        let (cert, key) = self_signed(&["server.example"]);
        let ks = made.keystore("ks.p12", &[&cert], &key, "kspass");
        let ts = made.truststore("ts.p12", &[&cert], "tspass");
        let server = server_config(&ks, &Filters::default()).unwrap();
        let client = client_config(&Trust::Store(ts), &Filters::default()).unwrap();
        // Flume's client never compares the name with the certificate.
        handshake(client.clone(), server.clone(), "some-other-name").unwrap();
        handshake(client, server, "127.0.0.1").unwrap();
    }

    #[test]
    fn a_certificate_not_in_the_truststore_is_refused_unless_trust_all() {
        let made = Made::new();
        let (cert, key) = self_signed(&["server"]);
        let (other, _) = self_signed(&["server"]);
        let ks = made.keystore("ks.p12", &[&cert], &key, "pw");
        let ts = made.truststore("ts.p12", &[&other], "pw");
        let server = server_config(&ks, &Filters::default()).unwrap();
        let client = client_config(&Trust::Store(ts), &Filters::default()).unwrap();
        let e = handshake(client, server.clone(), "server").unwrap_err();
        assert!(matches!(e, rustls::Error::InvalidCertificate(_)), "{e:?}");
        let all = client_config(&Trust::All, &Filters::default()).unwrap();
        handshake(all, server, "server").unwrap();
    }

    #[test]
    fn a_chain_to_a_trusted_ca_is_accepted() {
        let made = Made::new();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["agent1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ks = made.keystore(
            "ks.p12",
            &[leaf.der(), ca.der()],
            &leaf_key.serialize_der(),
            "pw",
        );
        let ts = made.truststore("ts.p12", &[ca.der()], "pw");
        let server = server_config(&ks, &Filters::default()).unwrap();
        let client = client_config(&Trust::Store(ts), &Filters::default()).unwrap();
        handshake(client, server, "not-agent1").unwrap();
    }

    #[test]
    fn store_errors_name_their_setting() {
        let made = Made::new();
        let (cert, key) = self_signed(&["s"]);
        let mut ks = made.keystore("ks.p12", &[&cert], &key, "right");
        ks.password = Some("wrong".into());
        let e = server_config(&ks, &Filters::default()).unwrap_err();
        assert_eq!(e.setting(), Setting::Password, "{e}");

        let jks = made.dir.path().join("ks.jks");
        std::fs::write(&jks, [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2]).unwrap();
        let e = server_config(
            &Store {
                path: jks.clone(),
                password: Some("x".into()),
                store_type: "JKS".into(),
            },
            &Filters::default(),
        )
        .unwrap_err();
        assert_eq!(e.setting(), Setting::Store);
        let msg = e.to_string();
        assert!(
            msg.contains("keytool -importkeystore -srckeystore")
                && msg.contains("-deststoretype PKCS12"),
            "{msg}"
        );

        ks.password = Some("right".into());
        ks.store_type = "BKS".into();
        let e = server_config(&ks, &Filters::default()).unwrap_err();
        assert_eq!(e.setting(), Setting::StoreType);

        let ts = made.truststore("ts.p12", &[&cert], "pw");
        let e = server_config(&ts, &Filters::default()).unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
    }

    #[test]
    fn protocol_and_suite_filters_are_honoured() {
        let made = Made::new();
        let (cert, key) = self_signed(&["s"]);
        let ks = made.keystore("ks.p12", &[&cert], &key, "pw");
        let only = |p: &str| Filters {
            include_protocols: vec![p.into()],
            ..Filters::default()
        };
        let e = server_config(&ks, &only("TLSv1.1")).unwrap_err();
        assert_eq!(e.setting(), Setting::Protocols);
        // A TLS 1.2-only client cannot talk to a TLS 1.3-only server.
        let server = server_config(&ks, &only("TLSv1.3")).unwrap();
        let client = client_config(&Trust::All, &only("TLSv1.2")).unwrap();
        assert!(handshake(client, server.clone(), "s").is_err());
        let client = client_config(&Trust::All, &only("TLSv1.3")).unwrap();
        handshake(client, server, "s").unwrap();

        let suites = Filters {
            include_cipher_suites: vec!["TLS_AES_256_GCM_SHA384".into()],
            ..Filters::default()
        };
        let server = server_config(&ks, &suites).unwrap();
        let other = Filters {
            include_cipher_suites: vec!["TLS_CHACHA20_POLY1305_SHA256".into()],
            include_protocols: vec!["TLSv1.3".into()],
            ..Filters::default()
        };
        let client = client_config(&Trust::All, &other).unwrap();
        assert!(handshake(client, server.clone(), "s").is_err());
        let client = client_config(&Trust::All, &suites).unwrap();
        handshake(client, server, "s").unwrap();
        let none = Filters {
            exclude_cipher_suites: rustls::crypto::ring::default_provider()
                .cipher_suites
                .iter()
                .map(|s| java_suite_name(s.suite()))
                .collect(),
            ..Filters::default()
        };
        assert_eq!(
            client_config(&Trust::All, &none).unwrap_err().setting(),
            Setting::CipherSuites
        );
    }
}
