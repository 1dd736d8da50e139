//! Avro serializers: typed (`AvroSerializer<T>`) and generic (`GenericAvroSerializer`).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock, RwLock};

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::AvroSchema;
use kafka_client::serde::{MessageField, PrepareFuture, SerdeContext, SerdeError, Serializer};
use serde::Serialize;

use crate::client::SchemaRegistryClient;
use crate::config::{AvroSerdeConfig, SchemaRegistryConfig};
use crate::error::{AvroSerdeError, Result};
use crate::schema::{invalid_schema, ParsedSchema, SchemaDefinition, SharedSchema};
use crate::wire;
use fnv::FnvBuildHasher;

/// The schema a serializer writes with, and its id, for one topic's key or value.
#[derive(Debug)]
struct WriterSchema {
    id: u32,
    subject: String,
    schema: SharedSchema,
}

/// Writer schemas by topic, key and value apart. Looked up with the borrowed topic, so the
/// warm path allocates nothing.
#[derive(Debug, Default)]
struct WriterCache(RwLock<HashMap<String, WriterSlots, FnvBuildHasher>>);

/// The key's and the value's writer schema of one topic.
type WriterSlots = [Option<Arc<WriterSchema>>; 2];

fn slot(field: MessageField) -> usize {
    match field {
        MessageField::Key => 0,
        MessageField::Value => 1,
    }
}

impl WriterCache {
    fn get(&self, topic: &str, field: MessageField) -> Option<Arc<WriterSchema>> {
        self.with(topic, field, |writer| writer.map(Arc::clone))
    }

    /// Runs `f` on the cached writer without cloning it out of the lock.
    fn with<R>(
        &self,
        topic: &str,
        field: MessageField,
        f: impl FnOnce(Option<&Arc<WriterSchema>>) -> R,
    ) -> R {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        f(map.get(topic).and_then(|slots| slots[slot(field)].as_ref()))
    }

    fn contains(&self, topic: &str, field: MessageField) -> bool {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(topic)
            .is_some_and(|slots| slots[slot(field)].is_some())
    }

    fn insert(&self, topic: &str, field: MessageField, writer: Arc<WriterSchema>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.entry(topic.to_owned()).or_default()[slot(field)] = Some(writer);
    }
}

/// Finds (registering if configured) the id of `own` under the subject of `topic`/`field`,
/// or the subject's latest schema with `use.latest.version`.
async fn resolve_writer(
    client: &SchemaRegistryClient,
    config: &AvroSerdeConfig,
    own: &SharedSchema,
    own_definition: &SchemaDefinition,
    topic: &str,
    field: MessageField,
) -> Result<WriterSchema> {
    let subject =
        config
            .subject_name_strategy(field)
            .subject(topic, field, own.full_name().as_deref())?;
    let (id, schema) = if config.use_latest_version {
        let latest = client.latest_version(&subject).await?;
        let schema = client.parsed_schema_by_id(latest.id).await?;
        (latest.id, schema)
    } else if config.auto_register_schemas {
        (
            client.register(&subject, own_definition).await?,
            own.clone(),
        )
    } else {
        (
            client.schema_id(&subject, own_definition).await?,
            own.clone(),
        )
    };
    tracing::debug!(%subject, id, topic, %field, "Avro writer schema resolved");
    Ok(WriterSchema {
        id,
        subject,
        schema,
    })
}

fn not_prepared(ctx: &SerdeContext<'_>, what: String) -> SerdeError {
    AvroSerdeError::NotPrepared {
        topic: ctx.topic.to_owned(),
        field: ctx.field,
        what,
    }
    .into()
}

fn datum_mismatch(
    ctx: &SerdeContext<'_>,
    writer: &WriterSchema,
    reason: impl ToString,
) -> SerdeError {
    AvroSerdeError::DatumMismatch {
        topic: ctx.topic.to_owned(),
        field: ctx.field,
        subject: writer.subject.clone(),
        schema_id: writer.id,
        reason: reason.to_string(),
    }
    .into()
}

/// Serializes Rust values (serde plus `apache_avro::AvroSchema` derive) to Avro in Confluent's
/// wire format, registering or looking up `T`'s schema in the registry.
///
/// The registry is asked once per topic and field, in [`Serializer::prepare`]; after that,
/// `serialize` is a cache hit and an Avro encode.
///
/// ```
/// use apache_avro::AvroSchema;
/// use kafka_client::serde::{MessageField, SerdeContext};
/// use kafka_client::Headers;
/// use serde_avro::AvroSerializer;
///
/// #[derive(serde::Serialize, AvroSchema)]
/// struct Reading { sensor_id: String, value: i64 }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let serializer = AvroSerializer::<Reading>::from_properties([("schema.registry.url", "mock://doc-ser")]).unwrap();
/// let headers = Headers::new();
/// let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
/// let reading = Reading { sensor_id: "s1".into(), value: 7 };
/// let bytes = serializer.serialize_async(&reading, &ctx).await.unwrap().unwrap();
/// assert_eq!(bytes[0], 0); // magic byte, then the 4-byte schema id, then the datum
/// # });
/// ```
pub struct AvroSerializer<T> {
    client: SchemaRegistryClient,
    config: AvroSerdeConfig,
    own: SharedSchema,
    own_definition: SchemaDefinition,
    fixed: Option<Arc<WriterSchema>>,
    writers: WriterCache,
    _type: PhantomData<fn(&T)>,
}

impl<T> std::fmt::Debug for AvroSerializer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSerializer")
            .field("type", &std::any::type_name::<T>())
            .field("registry", &self.client.url())
            .field("config", &self.config)
            .finish()
    }
}

impl<T: AvroSchema> AvroSerializer<T> {
    /// A serializer of `T` using `client` and `config`.
    pub fn new(client: SchemaRegistryClient, config: AvroSerdeConfig) -> Result<Self> {
        let schema = T::get_schema();
        let own_definition = SchemaDefinition::from_schema(&schema);
        let own = Arc::new(
            ParsedSchema::new(schema).map_err(|e| invalid_schema(std::any::type_name::<T>(), e))?,
        );
        Ok(Self::with_schema(client, config, own, own_definition))
    }

    /// A serializer from Confluent properties: the registry's (`schema.registry.url`...) and
    /// the serializer's (`auto.register.schemas`...).
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let properties: Vec<(K, V)> = properties.into_iter().collect();
        let client = SchemaRegistryClient::new(&SchemaRegistryConfig::from_properties(
            properties.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
        )?)?;
        let config = AvroSerdeConfig::from_properties(
            properties.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
        )?;
        Self::new(client, config)
    }
}

impl<T> AvroSerializer<T> {
    fn with_schema(
        client: SchemaRegistryClient,
        config: AvroSerdeConfig,
        own: SharedSchema,
        own_definition: SchemaDefinition,
    ) -> Self {
        let fixed = config.use_schema_id.map(|id| {
            Arc::new(WriterSchema {
                id,
                subject: format!("(use.schema.id={id})"),
                schema: own.clone(),
            })
        });
        AvroSerializer {
            client,
            config,
            own,
            own_definition,
            fixed,
            writers: WriterCache::default(),
            _type: PhantomData,
        }
    }

    /// The registry client.
    pub fn client(&self) -> &SchemaRegistryClient {
        &self.client
    }

    /// `T`'s schema, as registered.
    pub fn schema(&self) -> &SchemaDefinition {
        &self.own_definition
    }
}

impl<T: Serialize> AvroSerializer<T> {
    /// [`Serializer::prepare`] then [`Serializer::serialize`], for use outside a Producer.
    pub async fn serialize_async(
        &self,
        data: &T,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let ctx = *ctx;
        if let Some(prepare) = Serializer::prepare(self, data, &ctx) {
            prepare.await?;
        }
        self.serialize(data, &ctx)
    }
}

impl<T: Serialize> Serializer<T> for AvroSerializer<T> {
    fn serialize(&self, data: &T, ctx: &SerdeContext<'_>) -> Result<Option<Vec<u8>>, SerdeError> {
        let encode = |writer: Option<&Arc<WriterSchema>>| {
            let writer = writer.ok_or_else(|| {
                not_prepared(ctx, format!("the schema of {}", std::any::type_name::<T>()))
            })?;
            let schema = &writer.schema;
            let mut buf = wire::header(writer.id, 64);
            apache_avro::write_avro_datum_ref(
                schema.schema(),
                schema.resolved().get_names(),
                data,
                &mut buf,
            )
            .map_err(|e| datum_mismatch(ctx, writer, e))?;
            Ok(Some(buf))
        };
        match &self.fixed {
            Some(fixed) => encode(Some(fixed)),
            None => self.writers.with(ctx.topic, ctx.field, encode),
        }
    }

    fn prepare<'a>(&'a self, _data: &'a T, ctx: &'a SerdeContext<'a>) -> Option<PrepareFuture<'a>> {
        if self.fixed.is_some() || self.writers.contains(ctx.topic, ctx.field) {
            return None;
        }
        Some(Box::pin(async move {
            let writer = resolve_writer(
                &self.client,
                &self.config,
                &self.own,
                &self.own_definition,
                ctx.topic,
                ctx.field,
            )
            .await?;
            self.writers.insert(ctx.topic, ctx.field, Arc::new(writer));
            Ok(())
        }))
    }
}

/// Serializes `apache_avro::types::Value`s with an explicit schema (Confluent's generic
/// mode), which may reference types registered under other subjects.
///
/// ```
/// use apache_avro::types::Value;
/// use kafka_client::serde::{MessageField, SerdeContext};
/// use kafka_client::Headers;
/// use serde_avro::{AvroSerdeConfig, GenericAvroSerializer, SchemaDefinition, SchemaRegistryClient};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let client = SchemaRegistryClient::from_url("mock://doc-generic").unwrap();
/// let schema = SchemaDefinition::new(r#"{"type":"record","name":"Reading","fields":[{"name":"value","type":"long"}]}"#);
/// let serializer = GenericAvroSerializer::new(client, AvroSerdeConfig::default(), schema);
/// let headers = Headers::new();
/// let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
/// let value = Value::Record(vec![("value".into(), Value::Long(7))]);
/// let bytes = serializer.serialize_async(&value, &ctx).await.unwrap().unwrap();
/// assert_eq!(&bytes[5..], &[14]); // zig-zag 7
/// # });
/// ```
pub struct GenericAvroSerializer {
    client: SchemaRegistryClient,
    config: AvroSerdeConfig,
    definition: SchemaDefinition,
    own: OnceLock<SharedSchema>,
    writers: WriterCache,
}

impl std::fmt::Debug for GenericAvroSerializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenericAvroSerializer")
            .field("registry", &self.client.url())
            .field("schema", &self.definition)
            .finish()
    }
}

impl GenericAvroSerializer {
    /// A serializer writing values of `schema`; its references are fetched from the
    /// registry on first use.
    pub fn new(
        client: SchemaRegistryClient,
        config: AvroSerdeConfig,
        schema: SchemaDefinition,
    ) -> Self {
        GenericAvroSerializer {
            client,
            config,
            definition: schema,
            own: OnceLock::new(),
            writers: WriterCache::default(),
        }
    }

    async fn own_schema(&self) -> Result<SharedSchema> {
        if let Some(own) = self.own.get() {
            return Ok(own.clone());
        }
        let parsed = self.client.parse(&self.definition).await?;
        Ok(self.own.get_or_init(|| parsed).clone())
    }

    /// [`Serializer::prepare`] then [`Serializer::serialize`], for use outside a Producer.
    pub async fn serialize_async(
        &self,
        data: &Value,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let ctx = *ctx;
        if let Some(prepare) = Serializer::prepare(self, data, &ctx) {
            prepare.await?;
        }
        self.serialize(data, &ctx)
    }
}

impl Serializer<Value> for GenericAvroSerializer {
    fn serialize(
        &self,
        data: &Value,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let writer = match self.config.use_schema_id {
            Some(id) => {
                let schema = self
                    .own
                    .get()
                    .cloned()
                    .ok_or_else(|| not_prepared(ctx, "the generic schema".to_owned()))?;
                Arc::new(WriterSchema {
                    id,
                    subject: format!("(use.schema.id={id})"),
                    schema,
                })
            }
            None => self
                .writers
                .get(ctx.topic, ctx.field)
                .ok_or_else(|| not_prepared(ctx, "the generic schema".to_owned()))?,
        };
        let schema = &writer.schema;
        let encoder = GenericDatumWriter::builder(schema.schema())
            .resolved_schemata(schema.resolved().clone())
            .build()
            .map_err(|e| datum_mismatch(ctx, &writer, e))?;
        let mut buf = wire::header(writer.id, 64);
        encoder
            .write_value_ref(&mut buf, data)
            .map_err(|e| datum_mismatch(ctx, &writer, format!("{e} (value {data:?})")))?;
        Ok(Some(buf))
    }

    fn prepare<'a>(
        &'a self,
        _data: &'a Value,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        let ready = match self.config.use_schema_id {
            Some(_) => self.own.get().is_some(),
            None => self.writers.contains(ctx.topic, ctx.field),
        };
        if ready {
            return None;
        }
        Some(Box::pin(async move {
            let own = self.own_schema().await?;
            if self.config.use_schema_id.is_none() {
                let writer = resolve_writer(
                    &self.client,
                    &self.config,
                    &own,
                    &self.definition,
                    ctx.topic,
                    ctx.field,
                )
                .await?;
                self.writers.insert(ctx.topic, ctx.field, Arc::new(writer));
            }
            Ok(())
        }))
    }
}
