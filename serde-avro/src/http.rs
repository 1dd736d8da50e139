//! The Confluent Schema Registry REST client.
//!
//! `schema_registry_converter`'s own async client is not used for the calls: it folds the
//! HTTP status and Confluent's `error_code` into a message string (so 404/409/422 cannot be
//! told apart by type), treats only 502/503 as retriable, has no `/config` or `DELETE`
//! calls, and registers references implicitly. Its response types are used for parsing.

use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use schema_registry_converter::schema_registry_common::{RawError, RawRegisteredSchema};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::compatibility::CompatibilityLevel;
use crate::config::{Credentials, SchemaRegistryConfig};
use crate::error::{AvroSerdeError, Result};
use crate::schema::{RegisteredSchema, SchemaDefinition, SchemaReference};

const CONTENT_TYPE_V1: &str = "application/vnd.schemaregistry.v1+json";
const ACCEPTED: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";

/// What a request is about, to turn Confluent's 404 codes into the right error.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Subject(&'a str),
    SubjectVersion(&'a str, Option<u32>),
    SchemaId(u32),
    Global,
}

#[derive(Debug)]
pub(crate) struct HttpRegistry {
    base_urls: Vec<Url>,
    http: reqwest::Client,
    credentials: Credentials,
    max_retries: u32,
    retry_wait: Duration,
    retry_max_wait: Duration,
}

impl HttpRegistry {
    pub(crate) fn new(config: &SchemaRegistryConfig) -> Result<Self> {
        let mut base_urls = Vec::new();
        for url in &config.urls {
            let parsed = Url::parse(url).map_err(|e| AvroSerdeError::Config {
                key: "schema.registry.url".into(),
                value: url.clone(),
                reason: e.to_string(),
            })?;
            base_urls.push(parsed);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| AvroSerdeError::Config {
                key: "schema.registry.url".into(),
                value: config.urls.join(","),
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(HttpRegistry {
            base_urls,
            http,
            credentials: config.credentials.clone(),
            max_retries: config.max_retries,
            retry_wait: config.retry_wait,
            retry_max_wait: config.retry_max_wait,
        })
    }

    pub(crate) async fn register(
        &self,
        subject: &str,
        definition: &SchemaDefinition,
    ) -> Result<u32> {
        #[derive(serde::Deserialize)]
        struct Registered {
            id: u32,
        }
        let body = schema_body(definition);
        let registered: Registered = self
            .call(
                Method::POST,
                &["subjects", subject, "versions"],
                &[],
                Some(body),
                Target::Subject(subject),
            )
            .await?;
        Ok(registered.id)
    }

    pub(crate) async fn lookup(
        &self,
        subject: &str,
        definition: &SchemaDefinition,
    ) -> Result<RegisteredSchema> {
        let body = schema_body(definition);
        let raw: RawRegisteredSchema = self
            .call(
                Method::POST,
                &["subjects", subject],
                &[],
                Some(body),
                Target::Subject(subject),
            )
            .await?;
        self.registered(raw, subject, Some(definition))
    }

    pub(crate) async fn schema_by_id(&self, id: u32) -> Result<SchemaDefinition> {
        let id_text = id.to_string();
        let raw: RawRegisteredSchema = self
            .call(
                Method::GET,
                &["schemas", "ids", &id_text],
                &[],
                None,
                Target::SchemaId(id),
            )
            .await?;
        let schema = raw
            .schema
            .ok_or_else(|| self.invalid_response(format!("schema id {id}: no \"schema\" field")))?;
        Ok(SchemaDefinition {
            schema,
            references: references(raw.references),
        })
    }

    pub(crate) async fn version(
        &self,
        subject: &str,
        version: Option<u32>,
    ) -> Result<RegisteredSchema> {
        let version_text = version.map_or_else(|| "latest".to_owned(), |v| v.to_string());
        let raw: RawRegisteredSchema = self
            .call(
                Method::GET,
                &["subjects", subject, "versions", &version_text],
                &[],
                None,
                Target::SubjectVersion(subject, version),
            )
            .await?;
        self.registered(raw, subject, None)
    }

    pub(crate) async fn subjects(&self) -> Result<Vec<String>> {
        self.call(Method::GET, &["subjects"], &[], None, Target::Global)
            .await
    }

    pub(crate) async fn versions(&self, subject: &str) -> Result<Vec<u32>> {
        self.call(
            Method::GET,
            &["subjects", subject, "versions"],
            &[],
            None,
            Target::Subject(subject),
        )
        .await
    }

    pub(crate) async fn test_compatibility(
        &self,
        subject: &str,
        definition: &SchemaDefinition,
    ) -> Result<bool> {
        #[derive(serde::Deserialize)]
        struct Answer {
            is_compatible: bool,
        }
        let answer: Answer = self
            .call(
                Method::POST,
                &["compatibility", "subjects", subject, "versions", "latest"],
                &[],
                Some(schema_body(definition)),
                Target::SubjectVersion(subject, None),
            )
            .await?;
        Ok(answer.is_compatible)
    }

    /// `None` for a subject without its own level (Confluent answers 404 with code 40408).
    pub(crate) async fn compatibility(
        &self,
        subject: Option<&str>,
    ) -> Result<Option<CompatibilityLevel>> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Config {
            compatibility_level: String,
        }
        let result: Result<Config> = match subject {
            None => {
                self.call(Method::GET, &["config"], &[], None, Target::Global)
                    .await
            }
            Some(subject) => {
                self.call(
                    Method::GET,
                    &["config", subject],
                    &[],
                    None,
                    Target::Subject(subject),
                )
                .await
            }
        };
        match result {
            Ok(config) => config
                .compatibility_level
                .parse()
                .map(Some)
                .map_err(|e| self.invalid_response(format!("{e}"))),
            Err(AvroSerdeError::SubjectNotFound { .. }) if subject.is_some() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<CompatibilityLevel> {
        #[derive(serde::Deserialize)]
        struct Config {
            compatibility: String,
        }
        let body = json!({ "compatibility": level.as_str() });
        let config: Config = match subject {
            None => {
                self.call(Method::PUT, &["config"], &[], Some(body), Target::Global)
                    .await?
            }
            Some(subject) => {
                self.call(
                    Method::PUT,
                    &["config", subject],
                    &[],
                    Some(body),
                    Target::Subject(subject),
                )
                .await?
            }
        };
        config
            .compatibility
            .parse()
            .map_err(|e| self.invalid_response(format!("{e}")))
    }

    pub(crate) async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>> {
        let query: &[(&str, &str)] = if permanent {
            &[("permanent", "true")]
        } else {
            &[]
        };
        self.call(
            Method::DELETE,
            &["subjects", subject],
            query,
            None,
            Target::Subject(subject),
        )
        .await
    }

    fn registered(
        &self,
        raw: RawRegisteredSchema,
        subject: &str,
        sent: Option<&SchemaDefinition>,
    ) -> Result<RegisteredSchema> {
        let (Some(id), Some(version)) = (raw.id, raw.version) else {
            return Err(
                self.invalid_response(format!("subject {subject}: no \"id\" or \"version\" field"))
            );
        };
        let definition = match (raw.schema, sent) {
            (Some(schema), _) => SchemaDefinition {
                schema,
                references: references(raw.references),
            },
            (None, Some(sent)) => sent.clone(),
            (None, None) => {
                return Err(self.invalid_response(format!("subject {subject}: no \"schema\" field")))
            }
        };
        Ok(RegisteredSchema {
            subject: raw.subject.unwrap_or_else(|| subject.to_owned()),
            version,
            id,
            definition,
        })
    }

    fn invalid_response(&self, reason: String) -> AvroSerdeError {
        AvroSerdeError::InvalidResponse {
            url: self
                .base_urls
                .first()
                .map(Url::to_string)
                .unwrap_or_default(),
            reason,
        }
    }

    /// Sends a request, trying each base URL in turn and retrying retriable failures with
    /// exponential backoff, and decodes the JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
        target: Target<'_>,
    ) -> Result<T> {
        let mut wait = self.retry_wait;
        let mut attempt = 0;
        loop {
            let mut last_error = None;
            for base in &self.base_urls {
                match self
                    .call_once(base, method.clone(), path, query, body.as_ref(), target)
                    .await
                {
                    Ok(value) => return Ok(value),
                    // Another URL may be up; other errors would be the same everywhere.
                    Err(error @ AvroSerdeError::RegistryUnreachable { .. }) => {
                        last_error = Some(error)
                    }
                    Err(error) => {
                        last_error = Some(error);
                        break;
                    }
                }
            }
            let Some(error) = last_error else {
                return Err(AvroSerdeError::Config {
                    key: "schema.registry.url".into(),
                    value: String::new(),
                    reason: "no URL configured".into(),
                });
            };
            if !error.is_retriable() || attempt >= self.max_retries {
                return Err(error);
            }
            attempt += 1;
            tracing::debug!(%error, attempt, "retrying schema registry request");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.retry_max_wait);
        }
    }

    async fn call_once<T: DeserializeOwned>(
        &self,
        base: &Url,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        target: Target<'_>,
    ) -> Result<T> {
        let url = endpoint(base, path, query);
        let mut request = self
            .http
            .request(method, url.clone())
            .header(ACCEPT, HeaderValue::from_static(ACCEPTED));
        request = match &self.credentials {
            Credentials::None => request,
            Credentials::Basic { user, password } => request.basic_auth(user, Some(password)),
            Credentials::Bearer(token) => request.bearer_auth(token),
        };
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1))
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| AvroSerdeError::RegistryUnreachable {
                url: url.to_string(),
                reason: error_chain(&e),
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| AvroSerdeError::RegistryUnreachable {
                url: url.to_string(),
                reason: error_chain(&e),
            })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| AvroSerdeError::InvalidResponse {
                url: url.to_string(),
                reason: format!("{e}: {text}"),
            });
        }
        let (error_code, message) = match serde_json::from_str::<RawError>(&text) {
            Ok(raw) => (raw.error_code, raw.message),
            Err(_) => (u32::from(status.as_u16()), text),
        };
        Err(map_error(status, error_code, message, url.as_str(), target))
    }
}

/// Maps Confluent's documented error answers to the crate's error classes.
fn map_error(
    status: StatusCode,
    error_code: u32,
    message: String,
    url: &str,
    target: Target<'_>,
) -> AvroSerdeError {
    let subject = match target {
        Target::Subject(subject) | Target::SubjectVersion(subject, _) => subject.to_owned(),
        Target::SchemaId(id) => format!("schema id {id}"),
        Target::Global => String::new(),
    };
    match (status.as_u16(), error_code, target) {
        (404, 40403, Target::SchemaId(id)) => AvroSerdeError::UnknownSchemaId { id },
        (404, 40403, _) => AvroSerdeError::SchemaNotFound { subject },
        (404, 40402, Target::SubjectVersion(_, version)) => AvroSerdeError::VersionNotFound {
            subject,
            version: version.map_or_else(|| "latest".to_owned(), |v| v.to_string()),
        },
        // 40401 subject not found, 40404 soft-deleted, 40408 no subject-level config.
        (404, 40401 | 40404 | 40408, _) => AvroSerdeError::SubjectNotFound { subject },
        (404, _, Target::SchemaId(id)) => AvroSerdeError::UnknownSchemaId { id },
        (409, _, _) => AvroSerdeError::IncompatibleSchema {
            subject,
            reason: message,
        },
        (422, _, _) => AvroSerdeError::InvalidSchema {
            subject,
            reason: format!("error code {error_code}: {message}"),
        },
        (status, error_code, _) if status >= 500 || status == 408 || status == 429 => {
            AvroSerdeError::RegistryServerError {
                url: url.to_owned(),
                status,
                error_code,
                message,
            }
        }
        (status, error_code, _) => AvroSerdeError::RegistryRequest {
            url: url.to_owned(),
            status,
            error_code,
            message,
        },
    }
}

/// `base` with `path` appended as percent-encoded segments (subjects may contain `/`).
fn endpoint(base: &Url, path: &[&str], query: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty();
        segments.extend(path);
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

fn schema_body(definition: &SchemaDefinition) -> serde_json::Value {
    let mut body = json!({ "schema": definition.schema });
    if !definition.references.is_empty() {
        body["references"] = json!(definition.references);
    }
    body
}

fn references(
    raw: Option<Vec<schema_registry_converter::schema_registry_common::RegisteredReference>>,
) -> Vec<SchemaReference> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|r| SchemaReference::new(r.name, r.subject, r.version))
        .collect()
}

/// The error and its causes, since reqwest's top-level message alone is vague.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
