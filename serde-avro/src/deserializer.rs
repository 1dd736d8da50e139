//! Avro deserializers: typed (`AvroDeserializer<T>`) and generic (`GenericAvroDeserializer`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::reader::datum::{GenericDatumReader, SpecificDatumReader};
use apache_avro::types::Value;
use apache_avro::{AvroSchema, Schema};
use kafka_client::serde::{Deserializer, PrepareFuture, SerdeContext, SerdeError};
use serde::de::DeserializeOwned;

use crate::bounds;
use crate::client::SchemaRegistryClient;
use crate::config::SchemaRegistryConfig;
use crate::error::{AvroSerdeError, Result};
use crate::schema::{invalid_schema, ParsedSchema, SharedSchema};
use crate::wire;
use fnv::FnvBuildHasher;

/// How data written with one writer schema id is decoded.
#[derive(Debug, Clone)]
enum DecodePlan {
    /// The writer schema encodes exactly like the reader's: decode straight into `T`.
    Direct,
    /// Decode with the writer schema, then apply Avro's resolution rules.
    Resolve(SharedSchema),
}

#[derive(Debug, Default)]
struct PlanCache(RwLock<HashMap<u32, DecodePlan, FnvBuildHasher>>);

impl PlanCache {
    fn get(&self, id: u32) -> Option<DecodePlan> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn contains(&self, id: u32) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
    }

    fn insert(&self, id: u32, plan: DecodePlan) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, plan);
    }
}

fn to_serde(error: AvroSerdeError) -> SerdeError {
    error.into()
}

fn unexpected_null(ctx: &SerdeContext<'_>) -> SerdeError {
    SerdeError::UnexpectedNull {
        topic: ctx.topic.to_owned(),
        field: ctx.field,
    }
}

fn not_prepared(ctx: &SerdeContext<'_>, id: u32) -> SerdeError {
    AvroSerdeError::NotPrepared {
        topic: ctx.topic.to_owned(),
        field: ctx.field,
        what: format!("writer schema id {id}"),
    }
    .into()
}

fn invalid_data(ctx: &SerdeContext<'_>, schema_id: u32, source: apache_avro::Error) -> SerdeError {
    AvroSerdeError::InvalidAvroData {
        topic: ctx.topic.to_owned(),
        field: ctx.field,
        schema_id,
        source,
    }
    .into()
}

fn resolution_error(
    ctx: &SerdeContext<'_>,
    writer_id: u32,
    reader: &ParsedSchema,
    reason: impl ToString,
) -> SerdeError {
    AvroSerdeError::SchemaResolution {
        topic: ctx.topic.to_owned(),
        field: ctx.field,
        writer_id,
        reader: reader.describe(),
        reason: reason.to_string(),
    }
    .into()
}

/// Refuses a datum whose declared lengths do not fit in it, before apache-avro
/// allocates what they ask for.
fn check_datum(
    writer: &ParsedSchema,
    datum: &[u8],
    id: u32,
    ctx: &SerdeContext<'_>,
) -> Result<(), SerdeError> {
    bounds::check_datum(writer.schema(), writer.resolved().get_names(), datum).map_err(|reason| {
        AvroSerdeError::MalformedDatum {
            topic: ctx.topic.to_owned(),
            field: ctx.field,
            schema_id: id,
            reason,
        }
        .into()
    })
}

/// Decodes the writer's datum into a `Value` and resolves it into `reader`'s schema.
fn decode_resolved(
    writer: &ParsedSchema,
    reader: &ParsedSchema,
    datum: &[u8],
    id: u32,
    ctx: &SerdeContext<'_>,
) -> Result<Value, SerdeError> {
    check_datum(writer, datum, id, ctx)?;
    let decoder = GenericDatumReader::builder(writer.schema())
        .resolved_writer_schemata(writer.resolved().clone())
        .build()
        .map_err(|e| invalid_data(ctx, id, e))?;
    let value = decoder
        .read_value(&mut &datum[..])
        .map_err(|e| invalid_data(ctx, id, e))?;
    value
        .resolve_with_names(reader.schema(), reader.resolved().get_names())
        .map_err(|e| resolution_error(ctx, id, reader, e))
}

/// Header, then the id's plan if `prepare` loaded it.
fn split_and_plan<'d>(
    plans: &PlanCache,
    data: Option<&'d [u8]>,
    ctx: &SerdeContext<'_>,
) -> Result<(u32, &'d [u8], DecodePlan), SerdeError> {
    let payload = data.ok_or_else(|| unexpected_null(ctx))?;
    let (id, datum) = wire::split(payload, ctx).map_err(to_serde)?;
    let plan = plans.get(id).ok_or_else(|| not_prepared(ctx, id))?;
    Ok((id, datum, plan))
}

/// The id to load in `prepare`, or `None` when there is nothing to load (null, a malformed
/// header that `deserialize` will report, or an id already loaded).
fn id_to_load(plans: &PlanCache, data: Option<&[u8]>, ctx: &SerdeContext<'_>) -> Option<u32> {
    let (id, _) = wire::split(data?, ctx).ok()?;
    (!plans.contains(id)).then_some(id)
}

async fn load_plan(
    client: &SchemaRegistryClient,
    reader: &ParsedSchema,
    id: u32,
) -> Result<DecodePlan> {
    let writer = client.parsed_schema_by_id(id).await?;
    Ok(if writer.canonical_form() == reader.canonical_form() {
        DecodePlan::Direct
    } else {
        DecodePlan::Resolve(writer)
    })
}

/// Deserializes Confluent-framed Avro into a Rust type, resolving each record's writer
/// schema (fetched by id, cached) into `T`'s schema with Avro's rules: defaults fill fields
/// the writer lacks, writer-only fields are skipped, numbers are promoted, enums and unions
/// are matched by name.
///
/// Kafka null is rejected with [`SerdeError::UnexpectedNull`]; wrap in
/// `kafka_client::serde::OptionSerde` to accept tombstones.
///
/// ```
/// use apache_avro::AvroSchema;
/// use kafka_client::serde::{Deserializer, MessageField, SerdeContext};
/// use kafka_client::Headers;
/// use serde_avro::{AvroDeserializer, AvroSerializer};
///
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, AvroSchema)]
/// struct Reading { sensor_id: String, value: i64 }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let props = [("schema.registry.url", "mock://doc-de")];
/// let serializer = AvroSerializer::<Reading>::from_properties(props).unwrap();
/// let deserializer = AvroDeserializer::<Reading>::from_properties(props).unwrap();
/// let headers = Headers::new();
/// let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
/// let reading = Reading { sensor_id: "s1".into(), value: 7 };
/// let bytes = serializer.serialize_async(&reading, &ctx).await.unwrap();
/// let back = deserializer.deserialize_async(bytes.as_deref(), &ctx).await.unwrap();
/// assert_eq!(back, reading);
/// # });
/// ```
pub struct AvroDeserializer<T: AvroSchema> {
    client: SchemaRegistryClient,
    reader: SharedSchema,
    direct: SpecificDatumReader<T>,
    plans: PlanCache,
}

impl<T: AvroSchema> std::fmt::Debug for AvroDeserializer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroDeserializer")
            .field("type", &std::any::type_name::<T>())
            .field("registry", &self.client.url())
            .finish()
    }
}

impl<T: AvroSchema> AvroDeserializer<T> {
    /// A deserializer into `T`, fetching writer schemas through `client`.
    pub fn new(client: SchemaRegistryClient) -> Result<Self> {
        let type_name = std::any::type_name::<T>();
        let reader =
            Arc::new(ParsedSchema::new(T::get_schema()).map_err(|e| invalid_schema(type_name, e))?);
        let direct = SpecificDatumReader::<T>::builder()
            .build()
            .map_err(|e| invalid_schema(type_name, e))?;
        Ok(AvroDeserializer {
            client,
            reader,
            direct,
            plans: PlanCache::default(),
        })
    }

    /// A deserializer from Confluent properties (`schema.registry.url`...).
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        Self::new(SchemaRegistryClient::new(
            &SchemaRegistryConfig::from_properties(properties)?,
        )?)
    }

    /// The registry client.
    pub fn client(&self) -> &SchemaRegistryClient {
        &self.client
    }
}

impl<T: AvroSchema + DeserializeOwned + Send + Sync> AvroDeserializer<T> {
    /// [`Deserializer::prepare`] then [`Deserializer::deserialize`], for use outside a
    /// Consumer.
    pub async fn deserialize_async(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<T, SerdeError> {
        let ctx = *ctx;
        if let Some(prepare) = Deserializer::prepare(self, data, &ctx) {
            prepare.await?;
        }
        self.deserialize(data, &ctx)
    }
}

impl<T: AvroSchema + DeserializeOwned + Send + Sync> Deserializer<T> for AvroDeserializer<T> {
    fn deserialize(&self, data: Option<&[u8]>, ctx: &SerdeContext<'_>) -> Result<T, SerdeError> {
        let (id, datum, plan) = split_and_plan(&self.plans, data, ctx)?;
        match plan {
            DecodePlan::Direct => {
                check_datum(&self.reader, datum, id, ctx)?;
                self.direct
                    .read(&mut &datum[..])
                    .map_err(|e| invalid_data(ctx, id, e))
            }
            DecodePlan::Resolve(writer) => {
                let value = decode_resolved(&writer, &self.reader, datum, id, ctx)?;
                apache_avro::from_value::<T>(&value)
                    .map_err(|e| resolution_error(ctx, id, &self.reader, e))
            }
        }
    }

    fn prepare<'a>(
        &'a self,
        data: Option<&'a [u8]>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        let id = id_to_load(&self.plans, data, ctx)?;
        Some(Box::pin(async move {
            let plan = load_plan(&self.client, &self.reader, id).await?;
            self.plans.insert(id, plan);
            Ok(())
        }))
    }

    /// The schema id is in the payload's framing, never in a header.
    fn reads_headers(&self) -> bool {
        false
    }
}

/// Deserializes Confluent-framed Avro into `apache_avro::types::Value`s: as written, or
/// resolved into an explicit reader schema.
pub struct GenericAvroDeserializer {
    client: SchemaRegistryClient,
    reader: Option<SharedSchema>,
    writers: RwLock<HashMap<u32, SharedSchema>>,
}

impl std::fmt::Debug for GenericAvroDeserializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenericAvroDeserializer")
            .field("registry", &self.client.url())
            .field("reader", &self.reader)
            .finish()
    }
}

impl GenericAvroDeserializer {
    /// Values as the writer schema describes them.
    pub fn new(client: SchemaRegistryClient) -> Self {
        GenericAvroDeserializer {
            client,
            reader: None,
            writers: RwLock::new(HashMap::new()),
        }
    }

    /// Values resolved into `reader` (a self-contained schema).
    pub fn with_reader_schema(client: SchemaRegistryClient, reader: Schema) -> Result<Self> {
        let described = reader.canonical_form();
        let reader = ParsedSchema::new(reader).map_err(|e| invalid_schema(&described, e))?;
        Ok(GenericAvroDeserializer {
            client,
            reader: Some(Arc::new(reader)),
            writers: RwLock::new(HashMap::new()),
        })
    }

    /// [`Deserializer::prepare`] then [`Deserializer::deserialize`], for use outside a
    /// Consumer.
    pub async fn deserialize_async(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Value, SerdeError> {
        let ctx = *ctx;
        if let Some(prepare) = Deserializer::prepare(self, data, &ctx) {
            prepare.await?;
        }
        self.deserialize(data, &ctx)
    }

    fn writer(&self, id: u32) -> Option<SharedSchema> {
        self.writers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }
}

impl Deserializer<Value> for GenericAvroDeserializer {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Value, SerdeError> {
        let payload = data.ok_or_else(|| unexpected_null(ctx))?;
        let (id, datum) = wire::split(payload, ctx).map_err(to_serde)?;
        let writer = self.writer(id).ok_or_else(|| not_prepared(ctx, id))?;
        match &self.reader {
            // Resolving into the writer's own schema changes nothing, and apache-avro's
            // union resolution clones and retries each level of a recursive schema:
            // exponential in the nesting (found by fuzzing, as a hang).
            Some(reader) if reader.canonical_form() != writer.canonical_form() => {
                decode_resolved(&writer, reader, datum, id, ctx)
            }
            _ => check_datum(&writer, datum, id, ctx).and_then(|()| {
                GenericDatumReader::builder(writer.schema())
                    .resolved_writer_schemata(writer.resolved().clone())
                    .build()
                    .and_then(|decoder| decoder.read_value(&mut &datum[..]))
                    .map_err(|e| invalid_data(ctx, id, e))
            }),
        }
    }

    fn prepare<'a>(
        &'a self,
        data: Option<&'a [u8]>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        let (id, _) = wire::split(data?, ctx).ok()?;
        if self.writer(id).is_some() {
            return None;
        }
        Some(Box::pin(async move {
            let writer = self.client.parsed_schema_by_id(id).await?;
            self.writers
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, writer);
            Ok(())
        }))
    }

    /// The schema id is in the payload's framing, never in a header.
    fn reads_headers(&self) -> bool {
        false
    }
}
