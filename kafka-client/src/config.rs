//! Client configuration: a typed builder over librdkafka's properties.
//!
//! Common settings have typed methods; anything else goes through
//! [`ClientConfig::set`] with librdkafka's property names (which are Kafka's, for the
//! most part). [`ClientConfig::from_env`] reads the `KAFKA_*` environment variables
//! users set in CI and containers.
//!
//! Secrets (SASL password, TLS key and its password, OAuth secrets) are never printed:
//! `Debug` shows them as `"[redacted]"`.
//!
//! ```
//! use std::time::Duration;
//! use kafka_client::config::{Acks, AutoOffsetReset, ClientConfig, Compression};
//!
//! let config = ClientConfig::new("localhost:9092")
//!     .client_id("plant-ingest")
//!     .group_id("plant-readers")
//!     .acks(Acks::All)
//!     .compression(Compression::Lz4)
//!     .linger(Duration::from_millis(5))
//!     .auto_offset_reset(AutoOffsetReset::Earliest)
//!     .sasl_plain("svc", "hunter2")
//!     .set("fetch.min.bytes", "1");
//! assert_eq!(config.get("bootstrap.servers"), Some("localhost:9092"));
//! assert!(!format!("{config:?}").contains("hunter2"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// Environment variable naming the bootstrap servers (as in Kafka's images).
pub const ENV_BOOTSTRAP_SERVERS: &str = "KAFKA_BOOTSTRAP_SERVERS";

/// The `fetch.queue.backoff.ms` this SDK's consumers use unless it is set.
///
/// librdkafka stops fetching while its local queue holds more than
/// `queued.min.messages` (100 000 by default) and checks again only after
/// `fetch.queue.backoff.ms`, 1 s by default. A consumer that drains 100k records in
/// well under a second then idles for the rest of it: measured on the test broker, a
/// typed consumer read 222k records/s with librdkafka's 1 s and 1.46M records/s with
/// the threshold out of the way. Kafka's Java consumer fetches again as soon as its
/// buffer drains; re-checking every 10 ms behaves much the same.
pub const DEFAULT_FETCH_QUEUE_BACKOFF_MS: u64 = 10;

/// Property name fragments whose values are secrets.
const SECRET_MARKERS: &[&str] = &["password", "secret", "key.pem", "ssl.key", "token"];

fn is_secret(key: &str) -> bool {
    SECRET_MARKERS.iter().any(|m| key.contains(m))
}

/// How many replicas must acknowledge a produced record (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: fire and forget.
    None,
    /// `acks=1`: the leader only.
    Leader,
    /// `acks=all`: every in-sync replica (required for idempotence).
    All,
}

/// Compression codec (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `none`.
    None,
    /// `gzip`.
    Gzip,
    /// `snappy`.
    Snappy,
    /// `lz4`.
    Lz4,
    /// `zstd`.
    Zstd,
}

/// Where a consumer starts without a committed offset (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOffsetReset {
    /// `earliest`.
    Earliest,
    /// `latest`.
    Latest,
    /// `error`: fail instead (Kafka's `none`).
    None,
}

/// Which records a consumer sees from transactional producers (`isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Only committed transactional records.
    ReadCommitted,
    /// Everything, including aborted records.
    ReadUncommitted,
}

/// `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN`.
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER`.
    OAuthBearer,
}

impl SaslMechanism {
    fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Some(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(SaslMechanism::ScramSha512),
            "OAUTHBEARER" => Some(SaslMechanism::OAuthBearer),
            _ => None,
        }
    }
}

/// Configuration shared by producers, consumers and admin clients.
///
/// Properties are kept by librdkafka name; typed methods write the same map, so
/// the last call wins.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    properties: BTreeMap<String, String>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.properties {
            if is_secret(k) {
                map.entry(k, &"[redacted]");
            } else {
                map.entry(k, v);
            }
        }
        map.finish()
    }
}

impl ClientConfig {
    /// A configuration for the cluster at `bootstrap_servers` (`host:port[,host:port]`).
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        ClientConfig::default().bootstrap_servers(bootstrap_servers)
    }

    /// Reads the environment:
    ///
    /// | variable | property |
    /// |---|---|
    /// | `KAFKA_BOOTSTRAP_SERVERS` (required) | `bootstrap.servers` |
    /// | `KAFKA_CLIENT_ID` | `client.id` |
    /// | `KAFKA_GROUP_ID` | `group.id` |
    /// | `KAFKA_SECURITY_PROTOCOL` | `security.protocol` |
    /// | `KAFKA_SASL_MECHANISM` | `sasl.mechanism` |
    /// | `KAFKA_SASL_USERNAME` / `KAFKA_SASL_PASSWORD` | `sasl.username` / `sasl.password` |
    /// | `KAFKA_SSL_CA_LOCATION` | `ssl.ca.location` |
    /// | `KAFKA_SSL_CERTIFICATE_LOCATION` / `KAFKA_SSL_KEY_LOCATION` / `KAFKA_SSL_KEY_PASSWORD` | `ssl.certificate.location` / `ssl.key.location` / `ssl.key.password` |
    ///
    /// Fails with [`Error::Config`] when `KAFKA_BOOTSTRAP_SERVERS` is unset.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`ClientConfig::from_env`] over any variable source (used by tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let bootstrap = lookup(ENV_BOOTSTRAP_SERVERS)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| Error::Config(format!("{ENV_BOOTSTRAP_SERVERS} is not set")))?;
        let mut config = ClientConfig::new(bootstrap);
        for (var, property) in [
            ("KAFKA_CLIENT_ID", "client.id"),
            ("KAFKA_GROUP_ID", "group.id"),
            ("KAFKA_SECURITY_PROTOCOL", "security.protocol"),
            ("KAFKA_SASL_MECHANISM", "sasl.mechanism"),
            ("KAFKA_SASL_USERNAME", "sasl.username"),
            ("KAFKA_SASL_PASSWORD", "sasl.password"),
            ("KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
            ("KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.certificate.location"),
            ("KAFKA_SSL_KEY_LOCATION", "ssl.key.location"),
            ("KAFKA_SSL_KEY_PASSWORD", "ssl.key.password"),
        ] {
            if let Some(value) = lookup(var) {
                config = config.set(property, value);
            }
        }
        Ok(config)
    }

    /// Sets any librdkafka property by name (the escape hatch).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Removes a property.
    pub fn unset(mut self, key: &str) -> Self {
        self.properties.remove(key);
        self
    }

    /// The value of a property, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// Every property, secrets included (for building clients, not for printing).
    pub fn properties(&self) -> impl Iterator<Item = (&str, &str)> {
        self.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `bootstrap.servers`.
    pub fn bootstrap_servers(self, servers: impl Into<String>) -> Self {
        self.set("bootstrap.servers", servers)
    }

    /// `client.id`.
    pub fn client_id(self, id: impl Into<String>) -> Self {
        self.set("client.id", id)
    }

    /// `group.id`.
    pub fn group_id(self, id: impl Into<String>) -> Self {
        self.set("group.id", id)
    }

    /// `acks`.
    pub fn acks(self, acks: Acks) -> Self {
        self.set(
            "acks",
            match acks {
                Acks::None => "0",
                Acks::Leader => "1",
                Acks::All => "all",
            },
        )
    }

    /// `enable.idempotence` (the typed producer turns it on unless told otherwise).
    pub fn enable_idempotence(self, enabled: bool) -> Self {
        self.set("enable.idempotence", enabled.to_string())
    }

    /// `compression.type`.
    pub fn compression(self, codec: Compression) -> Self {
        self.set(
            "compression.type",
            match codec {
                Compression::None => "none",
                Compression::Gzip => "gzip",
                Compression::Snappy => "snappy",
                Compression::Lz4 => "lz4",
                Compression::Zstd => "zstd",
            },
        )
    }

    /// `linger.ms`.
    pub fn linger(self, linger: Duration) -> Self {
        self.set("linger.ms", linger.as_millis().to_string())
    }

    /// `auto.offset.reset`.
    pub fn auto_offset_reset(self, reset: AutoOffsetReset) -> Self {
        self.set(
            "auto.offset.reset",
            match reset {
                AutoOffsetReset::Earliest => "earliest",
                AutoOffsetReset::Latest => "latest",
                AutoOffsetReset::None => "error",
            },
        )
    }

    /// `isolation.level`.
    pub fn isolation_level(self, level: IsolationLevel) -> Self {
        self.set(
            "isolation.level",
            match level {
                IsolationLevel::ReadCommitted => "read_committed",
                IsolationLevel::ReadUncommitted => "read_uncommitted",
            },
        )
    }

    /// `statistics.interval.ms`: how often the client publishes a statistics
    /// snapshot (see [`crate::stats`]); zero turns statistics off (the default).
    pub fn statistics_interval(self, interval: Duration) -> Self {
        self.set("statistics.interval.ms", interval.as_millis().to_string())
    }

    /// `enable.auto.commit` (off unless set: the typed consumer commits explicitly).
    pub fn enable_auto_commit(self, enabled: bool) -> Self {
        self.set("enable.auto.commit", enabled.to_string())
    }

    /// `security.protocol`.
    pub fn security_protocol(self, protocol: SecurityProtocol) -> Self {
        self.set(
            "security.protocol",
            match protocol {
                SecurityProtocol::Plaintext => "plaintext",
                SecurityProtocol::Ssl => "ssl",
                SecurityProtocol::SaslPlaintext => "sasl_plaintext",
                SecurityProtocol::SaslSsl => "sasl_ssl",
            },
        )
    }

    /// TLS trust store: `ssl.ca.location` (a PEM file).
    pub fn tls_ca(self, ca_pem: impl AsRef<Path>) -> Self {
        self.set("ssl.ca.location", ca_pem.as_ref().display().to_string())
    }

    /// Client certificate and key for mutual TLS (`ssl.certificate.location`,
    /// `ssl.key.location`, optional `ssl.key.password`).
    pub fn tls_client_cert(
        self,
        cert_pem: impl AsRef<Path>,
        key_pem: impl AsRef<Path>,
        key_password: Option<&str>,
    ) -> Self {
        let config = self
            .set(
                "ssl.certificate.location",
                cert_pem.as_ref().display().to_string(),
            )
            .set("ssl.key.location", key_pem.as_ref().display().to_string());
        match key_password {
            Some(p) => config.set("ssl.key.password", p),
            None => config,
        }
    }

    /// SASL credentials: `sasl.mechanism`, `sasl.username`, `sasl.password`.
    pub fn sasl(
        self,
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.set("sasl.mechanism", mechanism.as_str())
            .set("sasl.username", username)
            .set("sasl.password", password)
    }

    /// Shorthand for SASL/PLAIN credentials.
    pub fn sasl_plain(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.sasl(SaslMechanism::Plain, username, password)
    }

    /// Checks the settings that librdkafka would only reject late or vaguely: the
    /// bootstrap servers, the SASL mechanism and credentials, and that TLS files exist.
    pub fn validate(&self) -> Result<()> {
        match self.get("bootstrap.servers") {
            Some(s) if !s.trim().is_empty() => {}
            _ => return Err(Error::Config("bootstrap.servers is not set".into())),
        }
        let protocol = self
            .get("security.protocol")
            .unwrap_or("plaintext")
            .to_ascii_lowercase();
        if protocol.starts_with("sasl") {
            let mechanism = self.get("sasl.mechanism").unwrap_or("GSSAPI");
            match SaslMechanism::parse(mechanism) {
                Some(SaslMechanism::OAuthBearer) => {}
                Some(_) => {
                    for key in ["sasl.username", "sasl.password"] {
                        if self.get(key).is_none_or(str::is_empty) {
                            return Err(Error::Config(format!(
                                "security.protocol={protocol} with sasl.mechanism={mechanism} needs {key}"
                            )));
                        }
                    }
                }
                None => {
                    return Err(Error::Config(format!(
                        "unsupported sasl.mechanism {mechanism:?}: use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
                    )))
                }
            }
        }
        for key in [
            "ssl.ca.location",
            "ssl.certificate.location",
            "ssl.key.location",
        ] {
            if let Some(path) = self.get(key) {
                // "probe" asks librdkafka to search the system's CA locations.
                if path != "probe" && !Path::new(path).exists() {
                    return Err(Error::Config(format!("{key}: file {path} does not exist")));
                }
            }
        }
        self.validate_security(&protocol)
    }

    /// The protocol is known, TLS and SASL settings are not silently ignored, and
    /// the TLS files are readable PEM.
    fn validate_security(&self, protocol: &str) -> Result<()> {
        let (tls, sasl) = match protocol {
            "plaintext" => (false, false),
            "ssl" => (true, false),
            "sasl_plaintext" => (false, true),
            "sasl_ssl" => (true, true),
            other => {
                return Err(Error::Config(format!(
                    "unknown security.protocol {other:?}: use plaintext, ssl, sasl_plaintext or sasl_ssl"
                )))
            }
        };
        let tls_keys = [
            "ssl.ca.location",
            "ssl.certificate.location",
            "ssl.key.location",
        ];
        if !tls {
            if let Some(key) = tls_keys.iter().find(|k| self.get(k).is_some()) {
                return Err(Error::Config(format!(
                    "{key} is set but security.protocol={protocol} does not use TLS: use ssl or sasl_ssl"
                )));
            }
        }
        if !sasl {
            if let Some(key) = ["sasl.mechanism", "sasl.username", "sasl.password"]
                .iter()
                .find(|k| self.get(k).is_some())
            {
                return Err(Error::Config(format!(
                    "{key} is set but security.protocol={protocol} does not use SASL: use sasl_plaintext or sasl_ssl"
                )));
            }
        }
        match (
            self.get("ssl.certificate.location"),
            self.get("ssl.key.location"),
        ) {
            (Some(_), None) => return Err(Error::Config(
                "ssl.certificate.location is set without ssl.key.location (mutual TLS needs both)"
                    .into(),
            )),
            (None, Some(_)) => return Err(Error::Config(
                "ssl.key.location is set without ssl.certificate.location (mutual TLS needs both)"
                    .into(),
            )),
            _ => {}
        }
        for key in tls_keys {
            let Some(path) = self.get(key).filter(|p| *p != "probe") else {
                continue;
            };
            let contents = std::fs::read(path)
                .map_err(|e| Error::Config(format!("{key}: cannot read {path}: {e}")))?;
            if !contents.windows(11).any(|w| w == b"-----BEGIN ") {
                return Err(Error::Config(format!(
                    "{key}: {path} is not a PEM file (no -----BEGIN line)"
                )));
            }
        }
        Ok(())
    }

    /// The librdkafka configuration these settings amount to, for use with the
    /// `rdkafka` crate directly.
    pub fn to_rdkafka(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config.set_log_level(crate::context::rdkafka_log_level());
        config
    }

    /// These settings with this SDK's consumer defaults filled in where they are
    /// unset: `fetch.queue.backoff.ms` = [`DEFAULT_FETCH_QUEUE_BACKOFF_MS`]. The typed
    /// [`Consumer`](crate::Consumer) and kafka-streams' consumers apply it.
    ///
    /// ```
    /// use kafka_client::ClientConfig;
    ///
    /// let config = ClientConfig::new("localhost:9092").with_consumer_defaults();
    /// assert_eq!(config.get("fetch.queue.backoff.ms"), Some("10"));
    /// let mine = ClientConfig::new("localhost:9092")
    ///     .set("fetch.queue.backoff.ms", "500")
    ///     .with_consumer_defaults();
    /// assert_eq!(mine.get("fetch.queue.backoff.ms"), Some("500"));
    /// ```
    pub fn with_consumer_defaults(self) -> Self {
        self.with_default(
            "fetch.queue.backoff.ms",
            &DEFAULT_FETCH_QUEUE_BACKOFF_MS.to_string(),
        )
    }

    pub(crate) fn with_default(self, key: &str, value: &str) -> Self {
        if self.properties.contains_key(key) {
            self
        } else {
            self.set(key, value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn debug_hides_every_secret() {
        let config = ClientConfig::new("b:9092")
            .sasl(SaslMechanism::ScramSha512, "svc", "s3cret-pass")
            .set("ssl.key.password", "keypass")
            .set("ssl.key.pem", "-----BEGIN PRIVATE KEY-----")
            .set("sasl.oauthbearer.client.secret", "oauth-secret");
        let shown = format!("{config:?}");
        for secret in ["s3cret-pass", "keypass", "BEGIN PRIVATE", "oauth-secret"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert!(shown.contains("svc") && shown.contains("SCRAM-SHA-512"));
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn from_env_reads_kafka_variables() {
        let vars: HashMap<&str, &str> = [
            ("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092"),
            ("KAFKA_GROUP_ID", "g"),
            ("KAFKA_SASL_MECHANISM", "PLAIN"),
            ("KAFKA_SASL_USERNAME", "u"),
            ("KAFKA_SASL_PASSWORD", "p"),
        ]
        .into_iter()
        .collect();
        let config = ClientConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.get("bootstrap.servers"), Some("k1:9092,k2:9092"));
        assert_eq!(config.get("group.id"), Some("g"));
        assert_eq!(config.get("sasl.password"), Some("p"));
        let err = ClientConfig::from_lookup(|_| None).unwrap_err();
        assert!(err.to_string().contains("KAFKA_BOOTSTRAP_SERVERS"), "{err}");
    }

    #[test]
    fn typed_setters_write_librdkafka_names() {
        let config = ClientConfig::new("b")
            .acks(Acks::All)
            .compression(Compression::Zstd)
            .linger(Duration::from_millis(7))
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted)
            .enable_idempotence(true)
            .security_protocol(SecurityProtocol::SaslSsl);
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("compression.type"), Some("zstd"));
        assert_eq!(config.get("linger.ms"), Some("7"));
        assert_eq!(config.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(config.get("isolation.level"), Some("read_committed"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
    }

    #[test]
    fn validate_names_the_missing_piece() {
        let sasl = ClientConfig::new("b")
            .security_protocol(SecurityProtocol::SaslPlaintext)
            .set("sasl.mechanism", "PLAIN")
            .set("sasl.username", "u");
        let err = sasl.validate().unwrap_err().to_string();
        assert!(err.contains("sasl.password"), "{err}");

        let bad_mech = ClientConfig::new("b")
            .security_protocol(SecurityProtocol::SaslSsl)
            .set("sasl.mechanism", "MD5");
        assert!(bad_mech.validate().unwrap_err().to_string().contains("MD5"));

        let missing_ca = ClientConfig::new("b").tls_ca("/nonexistent/ca.pem");
        let err = missing_ca.validate().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");

        assert!(ClientConfig::new("b").validate().is_ok());
    }
}
