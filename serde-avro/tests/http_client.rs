//! The HTTP registry client against an HTTP double serving the JSON shapes of Confluent's
//! Schema Registry API reference.

mod common;

use std::time::Duration;

use apache_avro::AvroSchema;
use kafka_client::serde::{MessageField, SerdeContext};
use kafka_client::Headers;
use serde::{Deserialize, Serialize};
use serde_avro::{
    AvroDeserializer, AvroSerdeError, AvroSerializer, CompatibilityLevel, SchemaDefinition,
    SchemaReference, SchemaRegistryClient, SchemaRegistryConfig,
};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.iot")]
struct SensorMeasurement {
    sensor_id: String,
    datetime: i64,
    value: i64,
}

fn schema_json() -> String {
    SchemaDefinition::from_schema(&SensorMeasurement::get_schema()).schema
}

fn client(server: &MockServer) -> SchemaRegistryClient {
    // Fast retries keep the retry tests short; the backoff itself is the library's.
    let config = SchemaRegistryConfig::new(server.uri()).with_retries(2, Duration::from_millis(1));
    SchemaRegistryClient::new(&config).unwrap()
}

fn error_body(code: u16, error_code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(json!({"error_code": error_code, "message": message}))
}

#[tokio::test]
async fn register_sends_confluent_body_and_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/subjects/plant01-value/versions"))
        .and(header("content-type", CONTENT_TYPE))
        // base64("alice:s3cret")
        .and(header("authorization", "Basic YWxpY2U6czNjcmV0"))
        .and(body_json(json!({"schema": schema_json()})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 7})))
        .expect(1)
        .mount(&server)
        .await;
    let url = server.uri();
    let serializer = AvroSerializer::<SensorMeasurement>::from_properties([
        ("schema.registry.url", url.as_str()),
        ("basic.auth.credentials.source", "USER_INFO"),
        ("basic.auth.user.info", "alice:s3cret"),
    ])
    .unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
    let record = SensorMeasurement {
        sensor_id: "s1".into(),
        datetime: 1,
        value: 2,
    };
    let bytes = serializer
        .serialize_async(&record, &ctx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 7]);
    // Cached: a second record issues no request (expect(1) above).
    serializer.serialize_async(&record, &ctx).await.unwrap();
}

#[tokio::test]
async fn bearer_token_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/subjects"))
        .and(header("authorization", "Bearer tok-123"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!(["plant01-value", "plant02-value"])),
        )
        .expect(1)
        .mount(&server)
        .await;
    let url = server.uri();
    let client = SchemaRegistryClient::from_properties([
        ("schema.registry.url", url.as_str()),
        ("bearer.auth.credentials.source", "STATIC_TOKEN"),
        ("bearer.auth.token", "tok-123"),
    ])
    .unwrap();
    assert_eq!(
        client.subjects().await.unwrap(),
        ["plant01-value", "plant02-value"]
    );
}

#[tokio::test]
async fn get_schema_by_id_is_cached() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/schemas/ids/1"))
        .and(|request: &wiremock::Request| {
            request
                .headers
                .get("accept")
                .and_then(|accept| accept.to_str().ok())
                .is_some_and(|accept| accept.starts_with(CONTENT_TYPE))
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"schema": schema_json()})))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let first = client.schema_by_id(1).await.unwrap();
    let second = client.schema_by_id(1).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.schema, schema_json());

    // The deserializer goes through the same cache: decoding id 1 needs no new request.
    let deserializer = AvroDeserializer::<SensorMeasurement>::new(client).unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
    let bytes = [0, 0, 0, 0, 1, 4, b's', b'1', 2, 4];
    for _ in 0..2 {
        let read = deserializer
            .deserialize_async(Some(&bytes), &ctx)
            .await
            .unwrap();
        assert_eq!(
            read,
            SensorMeasurement {
                sensor_id: "s1".into(),
                datetime: 1,
                value: 2
            }
        );
    }
}

#[tokio::test]
async fn lookup_latest_version_and_given_version() {
    let server = MockServer::start().await;
    let registered = |version: u32, id: u32| json!({"subject": "plant01-value", "version": version, "id": id, "schema": schema_json()});
    Mock::given(method("POST"))
        .and(path("/subjects/plant01-value"))
        .and(body_json(json!({"schema": schema_json()})))
        .respond_with(ResponseTemplate::new(200).set_body_json(registered(2, 12)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/subjects/plant01-value/versions/latest"))
        .respond_with(ResponseTemplate::new(200).set_body_json(registered(3, 13)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/subjects/plant01-value/versions/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(registered(1, 11)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/subjects/plant01-value/versions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([1, 2, 3])))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let definition = SchemaDefinition::new(schema_json());
    let found = client
        .lookup_schema("plant01-value", &definition)
        .await
        .unwrap();
    assert_eq!(
        (found.subject.as_str(), found.version, found.id),
        ("plant01-value", 2, 12)
    );
    // schema_id now comes from the cache.
    assert_eq!(
        client
            .schema_id("plant01-value", &definition)
            .await
            .unwrap(),
        12
    );
    let latest = client.latest_version("plant01-value").await.unwrap();
    assert_eq!((latest.version, latest.id), (3, 13));
    assert_eq!(latest.definition.schema, schema_json());
    // Latest is cached (no TTL configured: Confluent's default -1).
    assert_eq!(client.latest_version("plant01-value").await.unwrap().id, 13);
    let first = client.version("plant01-value", 1).await.unwrap();
    assert_eq!((first.version, first.id), (1, 11));
    assert_eq!(client.versions("plant01-value").await.unwrap(), [1, 2, 3]);
}

#[tokio::test]
async fn latest_cache_expires_after_its_ttl() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/subjects/s/versions/latest"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"subject": "s", "version": 1, "id": 1, "schema": "\"long\""}),
            ),
        )
        .expect(2)
        .mount(&server)
        .await;
    let config = SchemaRegistryConfig::from_properties([
        ("schema.registry.url", server.uri().as_str()),
        ("latest.cache.ttl.sec", "0"),
    ])
    .unwrap();
    let client = SchemaRegistryClient::new(&config).unwrap();
    client.latest_version("s").await.unwrap();
    // A zero TTL means every lookup is stale.
    client.latest_version("s").await.unwrap();
}

#[tokio::test]
async fn compatibility_test_and_levels() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(
            "/compatibility/subjects/plant01-value/versions/latest",
        ))
        .and(body_json(json!({"schema": schema_json()})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"is_compatible": false})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/config"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"compatibilityLevel": "FULL"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/config"))
        .and(body_json(json!({"compatibility": "NONE"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"compatibility": "NONE"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/config/plant01-value"))
        .respond_with(error_body(
            404,
            40408,
            "Subject 'plant01-value' does not have subject-level compatibility configured",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/config/plant02-value"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"compatibilityLevel": "FORWARD_TRANSITIVE"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/config/plant01-value"))
        .and(body_json(json!({"compatibility": "BACKWARD_TRANSITIVE"})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"compatibility": "BACKWARD_TRANSITIVE"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let definition = SchemaDefinition::new(schema_json());
    assert!(!client
        .test_compatibility("plant01-value", &definition)
        .await
        .unwrap());
    assert_eq!(
        client.global_compatibility().await.unwrap(),
        CompatibilityLevel::Full
    );
    assert_eq!(
        client
            .set_global_compatibility(CompatibilityLevel::None)
            .await
            .unwrap(),
        CompatibilityLevel::None
    );
    assert_eq!(
        client.subject_compatibility("plant01-value").await.unwrap(),
        None
    );
    assert_eq!(
        client.subject_compatibility("plant02-value").await.unwrap(),
        Some(CompatibilityLevel::ForwardTransitive)
    );
    assert_eq!(
        client
            .set_subject_compatibility("plant01-value", CompatibilityLevel::BackwardTransitive)
            .await
            .unwrap(),
        CompatibilityLevel::BackwardTransitive
    );
}

#[tokio::test]
async fn delete_subject_soft_and_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/subjects/plant01-value"))
        .and(query_param("permanent", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([1, 2])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/subjects/plant01-value"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([1, 2])))
        .expect(1) // the soft delete; the permanent one matches the mock above first
        .mount(&server)
        .await;
    let client = client(&server);
    assert_eq!(
        client.delete_subject("plant01-value", false).await.unwrap(),
        [1, 2]
    );
    assert_eq!(
        client.delete_subject("plant01-value", true).await.unwrap(),
        [1, 2]
    );
}

#[tokio::test]
async fn subjects_are_percent_encoded_in_paths() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/subjects/team%2Fplant01-value/versions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([1])))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        client(&server)
            .versions("team/plant01-value")
            .await
            .unwrap(),
        [1]
    );
}

#[tokio::test]
async fn not_found_codes_map_to_error_classes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/subjects/missing/versions/latest"))
        .respond_with(error_body(404, 40401, "Subject 'missing' not found."))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/subjects/plant01-value/versions/9"))
        .respond_with(error_body(404, 40402, "Version 9 not found."))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/schemas/ids/404"))
        .respond_with(error_body(404, 40403, "Schema 404 not found"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/subjects/plant01-value"))
        .respond_with(error_body(404, 40403, "Schema not found"))
        .mount(&server)
        .await;
    let client = client(&server);
    let err = client.latest_version("missing").await.unwrap_err();
    assert!(
        matches!(&err, AvroSerdeError::SubjectNotFound { subject } if subject == "missing"),
        "{err}"
    );
    let err = client.version("plant01-value", 9).await.unwrap_err();
    assert!(
        matches!(&err, AvroSerdeError::VersionNotFound { subject, version } if subject == "plant01-value" && version == "9"),
        "{err}"
    );
    let err = client.schema_by_id(404).await.unwrap_err();
    assert!(
        matches!(err, AvroSerdeError::UnknownSchemaId { id: 404 }),
        "{err}"
    );
    let err = client
        .lookup_schema("plant01-value", &SchemaDefinition::new(schema_json()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AvroSerdeError::SchemaNotFound { subject } if subject == "plant01-value"),
        "{err}"
    );
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn incompatible_and_invalid_schemas_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/subjects/plant01-value/versions"))
        .respond_with(error_body(
            409,
            409,
            "Schema being registered is incompatible with an earlier schema for subject \"plant01-value\"",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/subjects/plant02-value/versions"))
        .respond_with(error_body(
            422,
            42201,
            "Either the input schema or one its references is invalid",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let definition = SchemaDefinition::new(schema_json());
    let err = client
        .register("plant01-value", &definition)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AvroSerdeError::IncompatibleSchema { subject, reason } if subject == "plant01-value" && reason.contains("incompatible")),
        "{err}"
    );
    assert!(!err.is_retriable());
    let err = client
        .register("plant02-value", &definition)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AvroSerdeError::InvalidSchema { subject, reason } if subject == "plant02-value" && reason.contains("42201")),
        "{err}"
    );
}

#[tokio::test]
async fn server_errors_are_retriable_and_retried() {
    let server = MockServer::start().await;
    // The first attempt fails with a 500, the retry succeeds.
    Mock::given(method("GET"))
        .and(path("/subjects"))
        .respond_with(error_body(500, 50001, "Error in the backend data store"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/subjects"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(["plant01-value"])))
        .expect(1)
        .mount(&server)
        .await;
    // Always 503 (plain text body): 1 attempt + 2 retries, then a retriable error.
    Mock::given(method("GET"))
        .and(path("/schemas/ids/3"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream down"))
        .expect(3)
        .mount(&server)
        .await;
    let client = client(&server);
    assert_eq!(client.subjects().await.unwrap(), ["plant01-value"]);
    let err = client.schema_by_id(3).await.unwrap_err();
    assert!(
        matches!(&err, AvroSerdeError::RegistryServerError { status: 503, error_code: 503, message, .. } if message == "upstream down"),
        "{err}"
    );
    assert!(err.is_retriable());
}

#[tokio::test]
async fn other_client_errors_are_not_retriable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/subjects"))
        .respond_with(error_body(401, 40101, "Unauthorized"))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).subjects().await.unwrap_err();
    assert!(
        matches!(
            &err,
            AvroSerdeError::RegistryRequest {
                status: 401,
                error_code: 40101,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_retriable());
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.plant")]
struct Location {
    plant: String,
    hall: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.plant")]
struct Sensor {
    sensor_id: String,
    location: Location,
}

#[tokio::test]
async fn references_are_registered_and_resolved_over_http() {
    let server = MockServer::start().await;
    let location_json = SchemaDefinition::from_schema(&Location::get_schema()).schema;
    let sensor_json = r#"{"type":"record","name":"Sensor","namespace":"com.acme.plant","fields":[{"name":"sensor_id","type":"string"},{"name":"location","type":"Location"}]}"#;
    let reference =
        json!([{"name": "com.acme.plant.Location", "subject": "location-value", "version": 1}]);
    Mock::given(method("POST"))
        .and(path("/subjects/sensors-value/versions"))
        .and(body_json(
            json!({"schema": sensor_json, "references": reference}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 21})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/schemas/ids/21"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"schema": sensor_json, "references": reference})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/subjects/location-value/versions/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"subject": "location-value", "version": 1, "id": 20, "schema": location_json}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let definition =
        SchemaDefinition::new(sensor_json).with_references(vec![SchemaReference::new(
            "com.acme.plant.Location",
            "location-value",
            1,
        )]);
    assert_eq!(
        client.register("sensors-value", &definition).await.unwrap(),
        21
    );
    assert_eq!(client.schema_by_id(21).await.unwrap(), definition);
    // A record written with schema 21 decodes into the Rust type with the inlined reference.
    let deserializer = AvroDeserializer::<Sensor>::new(client).unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new("sensors", MessageField::Value, &headers);
    let bytes = [
        0, 0, 0, 0, 21, 4, b's', b'1', 14, b'p', b'l', b'a', b'n', b't', b'0', b'1', 4,
    ];
    let read = deserializer
        .deserialize_async(Some(&bytes), &ctx)
        .await
        .unwrap();
    assert_eq!(
        read,
        Sensor {
            sensor_id: "s1".into(),
            location: Location {
                plant: "plant01".into(),
                hall: 2
            }
        }
    );
}

#[tokio::test]
async fn request_timeout_is_a_retriable_unreachable_registry() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/subjects"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .set_delay(Duration::from_secs(5)),
        )
        .expect(2) // the attempt and one retry
        .mount(&server)
        .await;
    let config = SchemaRegistryConfig::from_properties([
        ("schema.registry.url", server.uri().as_str()),
        ("http.read.timeout.ms", "100"),
        ("max.retries", "1"),
        ("retries.wait.ms", "1"),
    ])
    .unwrap();
    let err = SchemaRegistryClient::new(&config)
        .unwrap()
        .subjects()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AvroSerdeError::RegistryUnreachable { .. }),
        "{err}"
    );
    assert!(err.is_retriable());
}

#[tokio::test]
async fn second_url_is_tried_when_the_first_is_unreachable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/subjects"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    let urls = format!("http://127.0.0.1:9,{}", server.uri());
    let config = SchemaRegistryConfig::new(urls).with_retries(0, Duration::from_millis(1));
    let client = SchemaRegistryClient::new(&config).unwrap();
    assert!(client.subjects().await.unwrap().is_empty());
}
