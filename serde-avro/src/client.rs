//! The registry client: one API over the HTTP and `mock://` registries, with caches.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::compatibility::CompatibilityLevel;
use crate::config::SchemaRegistryConfig;
use crate::error::{AvroSerdeError, Result};
use crate::http::HttpRegistry;
use crate::mock::{MockSchemaRegistry, MockScope};
use crate::schema::{
    invalid_schema, ParsedSchema, RegisteredSchema, SchemaDefinition, SharedSchema,
};

#[derive(Debug)]
enum Backend {
    Http(HttpRegistry),
    Mock(Arc<MockScope>),
}

/// A schema-registry client, selected by `schema.registry.url`: Confluent's REST API for
/// `http(s)://` URLs, the in-memory registry for `mock://<scope>`.
///
/// Cheap to clone; clones share the caches. Cached: schemas by id (never stale: ids are
/// immutable), ids by (subject, schema), versions by (subject, version), and each subject's
/// latest version for `latest.cache.ttl.sec`.
///
/// ```
/// # tokio_test_block_on(async {
/// use serde_avro::{SchemaDefinition, SchemaRegistryClient};
/// let client = SchemaRegistryClient::from_url("mock://doc-client").unwrap();
/// let schema = SchemaDefinition::new(r#"{"type":"record","name":"Reading","fields":[{"name":"value","type":"long"}]}"#);
/// let id = client.register("plant01-value", &schema).await.unwrap();
/// assert_eq!(client.latest_version("plant01-value").await.unwrap().id, id);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SchemaRegistryClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    url: String,
    latest_ttl: Option<Duration>,
    schemas_by_id: RwLock<HashMap<u32, SchemaDefinition>>,
    parsed_by_id: RwLock<HashMap<u32, SharedSchema>>,
    ids_by_schema: RwLock<HashMap<(String, SchemaDefinition), u32>>,
    versions: RwLock<HashMap<(String, u32), RegisteredSchema>>,
    latest: RwLock<HashMap<String, (Instant, RegisteredSchema)>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A poisoned cache is still a valid cache: entries are inserted whole.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SchemaRegistryClient {
    /// A client for `config.urls`.
    pub fn new(config: &SchemaRegistryConfig) -> Result<Self> {
        let url = config.urls.join(",");
        let backend = match config.urls.first().and_then(|u| u.strip_prefix("mock://")) {
            Some(scope) => Backend::Mock(MockSchemaRegistry::scope(scope)),
            None => Backend::Http(HttpRegistry::new(config)?),
        };
        Ok(SchemaRegistryClient {
            inner: Arc::new(Inner {
                backend,
                url,
                latest_ttl: config.latest_cache_ttl,
                schemas_by_id: Default::default(),
                parsed_by_id: Default::default(),
                ids_by_schema: Default::default(),
                versions: Default::default(),
                latest: Default::default(),
            }),
        })
    }

    /// A client with default settings for `url`.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::new(&SchemaRegistryConfig::new(url))
    }

    /// A client from Confluent properties (`schema.registry.url`, `basic.auth.user.info`...).
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        Self::new(&SchemaRegistryConfig::from_properties(properties)?)
    }

    /// The configured URL(s).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Registers `schema` under `subject` (a new version unless the subject has it already)
    /// and returns its id. Fails with [`AvroSerdeError::IncompatibleSchema`] when the
    /// subject's compatibility level rejects it.
    pub async fn register(&self, subject: &str, schema: &SchemaDefinition) -> Result<u32> {
        let key = (subject.to_owned(), schema.normalized());
        if let Some(id) = read(&self.inner.ids_by_schema).get(&key) {
            return Ok(*id);
        }
        let id = match &self.inner.backend {
            Backend::Http(http) => http.register(subject, schema).await?,
            Backend::Mock(mock) => mock.register(subject, schema)?,
        };
        write(&self.inner.ids_by_schema).insert(key, id);
        // The subject has a new latest version now.
        write(&self.inner.latest).remove(subject);
        Ok(id)
    }

    /// The id and version of `schema` under `subject`, without registering it.
    pub async fn lookup_schema(
        &self,
        subject: &str,
        schema: &SchemaDefinition,
    ) -> Result<RegisteredSchema> {
        let registered = match &self.inner.backend {
            Backend::Http(http) => http.lookup(subject, schema).await?,
            Backend::Mock(mock) => mock.lookup(subject, schema)?,
        };
        write(&self.inner.ids_by_schema)
            .insert((subject.to_owned(), schema.normalized()), registered.id);
        Ok(registered)
    }

    /// The id of `schema` under `subject`, from the cache when possible.
    pub async fn schema_id(&self, subject: &str, schema: &SchemaDefinition) -> Result<u32> {
        let key = (subject.to_owned(), schema.normalized());
        if let Some(id) = read(&self.inner.ids_by_schema).get(&key) {
            return Ok(*id);
        }
        Ok(self.lookup_schema(subject, schema).await?.id)
    }

    /// The schema with registry id `id` (cached: ids never change).
    pub async fn schema_by_id(&self, id: u32) -> Result<SchemaDefinition> {
        if let Some(schema) = read(&self.inner.schemas_by_id).get(&id) {
            return Ok(schema.clone());
        }
        let schema = match &self.inner.backend {
            Backend::Http(http) => http.schema_by_id(id).await?,
            Backend::Mock(mock) => mock.schema_by_id(id)?,
        };
        write(&self.inner.schemas_by_id).insert(id, schema.clone());
        Ok(schema)
    }

    /// The latest version of `subject`, cached for `latest.cache.ttl.sec`.
    pub async fn latest_version(&self, subject: &str) -> Result<RegisteredSchema> {
        if let Some((fetched, latest)) = read(&self.inner.latest).get(subject) {
            if self
                .inner
                .latest_ttl
                .is_none_or(|ttl| fetched.elapsed() < ttl)
            {
                return Ok(latest.clone());
            }
        }
        let latest = match &self.inner.backend {
            Backend::Http(http) => http.version(subject, None).await?,
            Backend::Mock(mock) => mock.version(subject, None)?,
        };
        write(&self.inner.latest).insert(subject.to_owned(), (Instant::now(), latest.clone()));
        Ok(latest)
    }

    /// Version `version` of `subject` (cached).
    pub async fn version(&self, subject: &str, version: u32) -> Result<RegisteredSchema> {
        let key = (subject.to_owned(), version);
        if let Some(found) = read(&self.inner.versions).get(&key) {
            return Ok(found.clone());
        }
        let found = match &self.inner.backend {
            Backend::Http(http) => http.version(subject, Some(version)).await?,
            Backend::Mock(mock) => mock.version(subject, Some(version))?,
        };
        write(&self.inner.versions).insert(key, found.clone());
        Ok(found)
    }

    /// Every subject of the registry.
    pub async fn subjects(&self) -> Result<Vec<String>> {
        match &self.inner.backend {
            Backend::Http(http) => http.subjects().await,
            Backend::Mock(mock) => Ok(mock.subjects()),
        }
    }

    /// The versions of `subject`, oldest first.
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>> {
        match &self.inner.backend {
            Backend::Http(http) => http.versions(subject).await,
            Backend::Mock(mock) => mock.versions(subject),
        }
    }

    /// Whether `schema` is compatible with the latest version of `subject` under the
    /// subject's level.
    pub async fn test_compatibility(
        &self,
        subject: &str,
        schema: &SchemaDefinition,
    ) -> Result<bool> {
        match &self.inner.backend {
            Backend::Http(http) => http.test_compatibility(subject, schema).await,
            Backend::Mock(mock) => mock.test_compatibility(subject, schema),
        }
    }

    /// The registry-wide default compatibility level.
    pub async fn global_compatibility(&self) -> Result<CompatibilityLevel> {
        let level = match &self.inner.backend {
            Backend::Http(http) => http.compatibility(None).await?,
            Backend::Mock(mock) => mock.compatibility(None),
        };
        Ok(level.unwrap_or_default())
    }

    /// Sets the registry-wide default compatibility level.
    pub async fn set_global_compatibility(
        &self,
        level: CompatibilityLevel,
    ) -> Result<CompatibilityLevel> {
        match &self.inner.backend {
            Backend::Http(http) => http.set_compatibility(None, level).await,
            Backend::Mock(mock) => {
                mock.set_compatibility(None, level);
                Ok(level)
            }
        }
    }

    /// The level set on `subject` itself; `None` when it follows the global level.
    ///
    /// That `None` is Confluent's answer (404, error code 40408). Apicurio Registry's
    /// Confluent-compatible API has no such answer: for a subject without a level of its
    /// own it returns the global level, which arrives here as `Some(level)`.
    pub async fn subject_compatibility(&self, subject: &str) -> Result<Option<CompatibilityLevel>> {
        match &self.inner.backend {
            Backend::Http(http) => http.compatibility(Some(subject)).await,
            Backend::Mock(mock) => Ok(mock.compatibility(Some(subject))),
        }
    }

    /// Sets the compatibility level of `subject`.
    pub async fn set_subject_compatibility(
        &self,
        subject: &str,
        level: CompatibilityLevel,
    ) -> Result<CompatibilityLevel> {
        match &self.inner.backend {
            Backend::Http(http) => http.set_compatibility(Some(subject), level).await,
            Backend::Mock(mock) => {
                mock.set_compatibility(Some(subject), level);
                Ok(level)
            }
        }
    }

    /// Deletes every version of `subject` and returns their numbers. Schemas stay readable
    /// by id. `permanent` (HTTP only) hard-deletes a subject that was soft-deleted before.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>> {
        let deleted = match &self.inner.backend {
            Backend::Http(http) => http.delete_subject(subject, permanent).await?,
            Backend::Mock(mock) => mock.delete_subject(subject)?,
        };
        write(&self.inner.latest).remove(subject);
        write(&self.inner.versions).retain(|(s, _), _| s != subject);
        write(&self.inner.ids_by_schema).retain(|(s, _), _| s != subject);
        Ok(deleted)
    }

    /// The parsed, self-contained schema with id `id` (references fetched and inlined),
    /// cached.
    pub async fn parsed_schema_by_id(&self, id: u32) -> Result<SharedSchema> {
        if let Some(parsed) = self.cached_parsed_schema(id) {
            return Ok(parsed);
        }
        let definition = self.schema_by_id(id).await?;
        let parsed = self.parse(&definition).await.map_err(|e| match e {
            AvroSerdeError::InvalidSchema { reason, .. } => {
                invalid_schema(&format!("schema id {id}"), reason)
            }
            other => other,
        })?;
        write(&self.inner.parsed_by_id).insert(id, parsed.clone());
        Ok(parsed)
    }

    /// The parsed schema with id `id` if it is cached (no I/O).
    pub fn cached_parsed_schema(&self, id: u32) -> Option<SharedSchema> {
        read(&self.inner.parsed_by_id).get(&id).cloned()
    }

    /// Parses `definition`, fetching the schemas it references from the registry.
    pub async fn parse(&self, definition: &SchemaDefinition) -> Result<SharedSchema> {
        let mut referenced = Vec::new();
        let mut seen = Vec::new();
        self.collect_references(definition, &mut referenced, &mut seen)
            .await?;
        ParsedSchema::parse_with_references(&definition.schema, &referenced)
            .map(Arc::new)
            .map_err(|e| invalid_schema("(unregistered schema)", e))
    }

    /// Referenced schemas' JSON, dependencies first.
    fn collect_references<'a>(
        &'a self,
        definition: &'a SchemaDefinition,
        out: &'a mut Vec<String>,
        seen: &'a mut Vec<(String, u32)>,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            for reference in &definition.references {
                let key = (reference.subject.clone(), reference.version);
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                let referenced = self.version(&reference.subject, reference.version).await?;
                self.collect_references(&referenced.definition, out, seen)
                    .await?;
                out.push(referenced.definition.schema);
            }
            Ok(())
        })
    }
}
