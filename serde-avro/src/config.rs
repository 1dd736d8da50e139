//! Configuration with Confluent's property names and defaults.

use std::time::Duration;

use kafka_client::serde::MessageField;

use crate::error::{AvroSerdeError, Result};

/// How the client authenticates to the registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP basic auth (`basic.auth.user.info=user:password`).
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// A static bearer token (`bearer.auth.token`).
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    // Never print secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}:***)"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Settings of a [`SchemaRegistryClient`](crate::SchemaRegistryClient).
///
/// | property | default | meaning |
/// |---|---|---|
/// | `schema.registry.url` | required | comma-separated `http(s)://` URLs, or `mock://<scope>` |
/// | `basic.auth.user.info` | none | `user:password` for HTTP basic auth |
/// | `bearer.auth.token` | none | static bearer token |
/// | `max.retries` | 3 | retries of retriable failures (unreachable, 5xx, 408, 429) |
/// | `retries.wait.ms` | 1000 | first backoff, doubled per retry |
/// | `retries.max.wait.ms` | 20000 | backoff cap |
/// | `http.connect.timeout.ms` | 60000 | TCP/TLS connect timeout |
/// | `http.read.timeout.ms` | 60000 | whole-request timeout |
/// | `latest.cache.ttl.sec` | -1 (never expires) | how long a subject's latest version is cached |
///
/// The `schema.registry.` prefixed forms of the auth properties are accepted too.
///
/// ```
/// use serde_avro::SchemaRegistryConfig;
/// let config = SchemaRegistryConfig::from_properties([
///     ("schema.registry.url", "http://localhost:8081"),
///     ("basic.auth.user.info", "alice:secret"),
/// ])
/// .unwrap();
/// assert_eq!(config.urls, vec!["http://localhost:8081".to_string()]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRegistryConfig {
    /// Registry URLs (`schema.registry.url`).
    pub urls: Vec<String>,
    /// Authentication.
    pub credentials: Credentials,
    /// `max.retries`.
    pub max_retries: u32,
    /// `retries.wait.ms`.
    pub retry_wait: Duration,
    /// `retries.max.wait.ms`.
    pub retry_max_wait: Duration,
    /// `http.connect.timeout.ms`.
    pub connect_timeout: Duration,
    /// `http.read.timeout.ms`.
    pub request_timeout: Duration,
    /// `latest.cache.ttl.sec`; `None` never expires.
    pub latest_cache_ttl: Option<Duration>,
}

impl SchemaRegistryConfig {
    /// Defaults for the registry at `url` (`http(s)://...` or `mock://<scope>`).
    pub fn new(url: impl Into<String>) -> Self {
        SchemaRegistryConfig {
            urls: split_urls(&url.into()),
            credentials: Credentials::None,
            max_retries: 3,
            retry_wait: Duration::from_millis(1000),
            retry_max_wait: Duration::from_millis(20_000),
            connect_timeout: Duration::from_millis(60_000),
            request_timeout: Duration::from_millis(60_000),
            latest_cache_ttl: None,
        }
    }

    /// Reads Confluent's property names; unknown properties (the serializer's, Kafka's) are
    /// ignored.
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut config = SchemaRegistryConfig::new("");
        let mut url_set = false;
        let mut bearer_source: Option<String> = None;
        for (key, value) in properties {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key
                .strip_prefix("schema.registry.")
                .filter(|k| !k.is_empty() && *k != "url")
                .unwrap_or(key)
            {
                "schema.registry.url" => {
                    config.urls = split_urls(value);
                    url_set = true;
                }
                "basic.auth.user.info" => {
                    let (user, password) = value
                        .split_once(':')
                        .ok_or_else(|| config_error(key, value, "expected user:password"))?;
                    config.credentials = Credentials::Basic {
                        user: user.to_owned(),
                        password: password.to_owned(),
                    };
                }
                "bearer.auth.token" => config.credentials = Credentials::Bearer(value.to_owned()),
                "bearer.auth.credentials.source" => bearer_source = Some(value.to_owned()),
                "max.retries" => config.max_retries = parse_number(key, value)?,
                "retries.wait.ms" => {
                    config.retry_wait = Duration::from_millis(parse_number(key, value)?)
                }
                "retries.max.wait.ms" => {
                    config.retry_max_wait = Duration::from_millis(parse_number(key, value)?)
                }
                "http.connect.timeout.ms" => {
                    config.connect_timeout = Duration::from_millis(parse_number(key, value)?)
                }
                "http.read.timeout.ms" => {
                    config.request_timeout = Duration::from_millis(parse_number(key, value)?)
                }
                "latest.cache.ttl.sec" => {
                    let seconds: i64 = parse_number(key, value)?;
                    config.latest_cache_ttl = u64::try_from(seconds).ok().map(Duration::from_secs);
                }
                _ => {}
            }
        }
        if let Some(source) = bearer_source {
            if source != "STATIC_TOKEN" {
                return Err(config_error(
                    "bearer.auth.credentials.source",
                    &source,
                    "only STATIC_TOKEN is supported",
                ));
            }
        }
        if !url_set || config.urls.is_empty() {
            return Err(config_error("schema.registry.url", "", "required"));
        }
        Ok(config)
    }

    /// The same settings with basic auth from `user:password`.
    pub fn with_basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Credentials::Basic {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    /// The same settings with a static bearer token.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.credentials = Credentials::Bearer(token.into());
        self
    }

    /// The same settings with `max.retries` and `retries.wait.ms`.
    pub fn with_retries(mut self, max_retries: u32, first_wait: Duration) -> Self {
        self.max_retries = max_retries;
        self.retry_wait = first_wait;
        self
    }

    /// The same settings with `latest.cache.ttl.sec` (`None`: never expires).
    pub fn with_latest_cache_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.latest_cache_ttl = ttl;
        self
    }

    /// The same settings with a whole-request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

fn split_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| u.trim_end_matches('/').to_owned())
        .collect()
}

fn config_error(key: &str, value: &str, reason: &str) -> AvroSerdeError {
    AvroSerdeError::Config {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

fn parse_number<N: std::str::FromStr>(key: &str, value: &str) -> Result<N>
where
    N::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: N::Err| config_error(key, value, &e.to_string()))
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(config_error(key, value, "expected true or false")),
    }
}

/// How a serializer names the subject it registers a schema under
/// (`key.subject.name.strategy` / `value.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value` (the default).
    #[default]
    TopicName,
    /// The record's full name, e.g. `com.acme.SensorMeasurement`.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// The subject for `field` on `topic` of a schema named `record_name`.
    ///
    /// ```
    /// use kafka_client::serde::MessageField;
    /// use serde_avro::SubjectNameStrategy;
    /// let name = Some("com.acme.Reading");
    /// assert_eq!(SubjectNameStrategy::TopicName.subject("plant01", MessageField::Value, name).unwrap(), "plant01-value");
    /// assert_eq!(SubjectNameStrategy::RecordName.subject("plant01", MessageField::Key, name).unwrap(), "com.acme.Reading");
    /// assert_eq!(SubjectNameStrategy::TopicRecordName.subject("plant01", MessageField::Value, name).unwrap(), "plant01-com.acme.Reading");
    /// ```
    pub fn subject(
        self,
        topic: &str,
        field: MessageField,
        record_name: Option<&str>,
    ) -> Result<String> {
        use schema_registry_converter::schema_registry_common::SubjectNameStrategy as Converter;
        let strategy = match self {
            SubjectNameStrategy::TopicName => {
                Converter::TopicNameStrategy(topic.to_owned(), field == MessageField::Key)
            }
            SubjectNameStrategy::RecordName | SubjectNameStrategy::TopicRecordName => {
                let name = record_name.ok_or_else(|| {
                    config_error(
                        &format!("{field}.subject.name.strategy"),
                        self.as_str(),
                        &format!("topic {topic}: the schema has no name (only records, enums and fixed do)"),
                    )
                })?;
                if self == SubjectNameStrategy::RecordName {
                    Converter::RecordNameStrategy(name.to_owned())
                } else {
                    Converter::TopicRecordNameStrategy(topic.to_owned(), name.to_owned())
                }
            }
        };
        strategy.get_subject().map_err(|e| {
            config_error(
                &format!("{field}.subject.name.strategy"),
                self.as_str(),
                &e.to_string(),
            )
        })
    }

    /// Confluent's short class name, e.g. `TopicNameStrategy`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectNameStrategy::TopicName => "TopicNameStrategy",
            SubjectNameStrategy::RecordName => "RecordNameStrategy",
            SubjectNameStrategy::TopicRecordName => "TopicRecordNameStrategy",
        }
    }

    /// Parses the short name or Confluent's Java class name
    /// (`io.confluent.kafka.serializers.subject.RecordNameStrategy`).
    pub fn parse(key: &str, value: &str) -> Result<Self> {
        match value.trim().rsplit('.').next().unwrap_or_default() {
            "TopicNameStrategy" => Ok(SubjectNameStrategy::TopicName),
            "RecordNameStrategy" => Ok(SubjectNameStrategy::RecordName),
            "TopicRecordNameStrategy" => Ok(SubjectNameStrategy::TopicRecordName),
            _ => Err(config_error(
                key,
                value,
                "expected TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy",
            )),
        }
    }
}

/// Options of the Avro serializers, with Confluent's names and defaults.
///
/// | property | default |
/// |---|---|
/// | `auto.register.schemas` | true |
/// | `use.latest.version` | false |
/// | `use.schema.id` | none (look the id up) |
/// | `key.subject.name.strategy` | TopicNameStrategy |
/// | `value.subject.name.strategy` | TopicNameStrategy |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvroSerdeConfig {
    /// Register the schema if the subject does not have it yet.
    pub auto_register_schemas: bool,
    /// Encode with the subject's latest registered schema instead of the value's own.
    pub use_latest_version: bool,
    /// Write this schema id without asking the registry.
    pub use_schema_id: Option<u32>,
    /// Subject naming for keys.
    pub key_subject_name_strategy: SubjectNameStrategy,
    /// Subject naming for values.
    pub value_subject_name_strategy: SubjectNameStrategy,
}

impl Default for AvroSerdeConfig {
    fn default() -> Self {
        AvroSerdeConfig {
            auto_register_schemas: true,
            use_latest_version: false,
            use_schema_id: None,
            key_subject_name_strategy: SubjectNameStrategy::TopicName,
            value_subject_name_strategy: SubjectNameStrategy::TopicName,
        }
    }
}

impl AvroSerdeConfig {
    /// Reads Confluent's property names; others are ignored.
    ///
    /// ```
    /// use serde_avro::{AvroSerdeConfig, SubjectNameStrategy};
    /// let config = AvroSerdeConfig::from_properties([
    ///     ("auto.register.schemas", "false"),
    ///     ("value.subject.name.strategy", "io.confluent.kafka.serializers.subject.RecordNameStrategy"),
    /// ])
    /// .unwrap();
    /// assert!(!config.auto_register_schemas);
    /// assert_eq!(config.value_subject_name_strategy, SubjectNameStrategy::RecordName);
    /// ```
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut config = AvroSerdeConfig::default();
        for (key, value) in properties {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key {
                "auto.register.schemas" => config.auto_register_schemas = parse_bool(key, value)?,
                "use.latest.version" => config.use_latest_version = parse_bool(key, value)?,
                "use.schema.id" => {
                    let id: i64 = parse_number(key, value)?;
                    config.use_schema_id = u32::try_from(id).ok();
                }
                "key.subject.name.strategy" => {
                    config.key_subject_name_strategy = SubjectNameStrategy::parse(key, value)?
                }
                "value.subject.name.strategy" => {
                    config.value_subject_name_strategy = SubjectNameStrategy::parse(key, value)?
                }
                _ => {}
            }
        }
        Ok(config)
    }

    /// The strategy for `field`.
    pub fn subject_name_strategy(&self, field: MessageField) -> SubjectNameStrategy {
        match field {
            MessageField::Key => self.key_subject_name_strategy,
            MessageField::Value => self.value_subject_name_strategy,
        }
    }
}
