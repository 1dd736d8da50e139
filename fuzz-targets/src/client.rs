//! kafka-client targets: record headers with W3C trace context, and configuration
//! text (client properties from the environment, the schema registry and Avro serde
//! properties, and the streams endpoint and guarantee).

use std::collections::BTreeMap;

use kafka_client::trace_context::{
    extract, format_traceparent, inject, parse_traceparent, TRACEPARENT, TRACESTATE,
};
use kafka_client::{ClientConfig, Header, Headers};
use kafka_streams::fuzzing::{frame, framed_pairs};
use kafka_streams::runtime::{HostInfo, ProcessingGuarantee};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::Context;
use serde_avro::{AvroSerdeConfig, SchemaRegistryConfig};

/// Headers framed as `kafka_streams::fuzzing::framed_pairs` reads them (names taken
/// as UTF-8, lossily, as the consumer does); the trace context they carry must
/// survive being written to other headers and read back.
pub fn trace_headers(data: &[u8]) -> bool {
    let headers: Headers = framed_pairs(data)
        .into_iter()
        .map(|(key, value)| Header {
            key: String::from_utf8_lossy(key).into_owned(),
            value: value.map(<[u8]>::to_vec),
        })
        .collect();
    for header in &headers {
        if let Some(text) = header
            .value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
        {
            let _ = parse_traceparent(text, None);
        }
    }
    let Some(context) = extract(&headers) else {
        return false;
    };
    let formatted = format_traceparent(&context).expect("an extracted context is valid");
    let mut forwarded = headers.clone();
    let injected = inject(
        &Context::new().with_remote_span_context(context.clone()),
        &mut forwarded,
    )
    .expect("a valid context is injected");
    assert_eq!(
        forwarded.iter().filter(|h| h.key == TRACEPARENT).count(),
        1,
        "injecting replaces every traceparent"
    );
    assert_eq!(
        forwarded.last(TRACEPARENT),
        Some(formatted.as_bytes()),
        "the injected traceparent is the formatted context"
    );
    let again = extract(&forwarded).expect("an injected context extracts");
    for read in [&injected, &again] {
        assert_eq!(read.trace_id(), context.trace_id());
        assert_eq!(read.span_id(), context.span_id());
        assert_eq!(read.trace_flags(), context.trace_flags());
        assert_eq!(read.trace_state().header(), context.trace_state().header());
    }
    let mut stripped = forwarded;
    stripped.remove(TRACEPARENT);
    stripped.remove(TRACESTATE);
    assert!(extract(&stripped).is_none(), "no traceparent, no context");
    true
}

/// Headers as a producer with trace context writes them, among others.
pub fn trace_headers_seeds() -> Vec<Vec<u8>> {
    let trace_id = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex");
    let span_id = SpanId::from_hex("b7ad6b7169203331").expect("hex");
    let states = [
        TraceState::default(),
        TraceState::from_key_value([("vendor", "value"), ("other@tenant", "x")]).expect("valid"),
    ];
    let mut seeds = Vec::new();
    for (state, flags) in states
        .into_iter()
        .zip([TraceFlags::SAMPLED, TraceFlags::default()])
    {
        let context = SpanContext::new(trace_id, span_id, flags, true, state);
        let mut headers = Headers::new().with("source", "plant01");
        headers.insert_null("null-valued");
        inject(
            &Context::new().with_remote_span_context(context),
            &mut headers,
        )
        .expect("a valid context");
        let pairs: Vec<(&[u8], Option<&[u8]>)> = headers
            .iter()
            .map(|h| (h.key.as_bytes(), h.value.as_deref()))
            .collect();
        seeds.push(frame(&pairs));
    }
    seeds
}

/// `NAME=VALUE` lines, read as environment variables by `ClientConfig::from_lookup`
/// and as properties by the schema registry and Avro serde configurations and the
/// streams endpoint and guarantee parsers. Whether any of them accepted the text.
pub fn client_config(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let properties: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let mut accepted = false;
    if let Ok(config) =
        ClientConfig::from_lookup(|name| properties.get(name).map(|v| v.to_string()))
    {
        accepted = true;
        // Validation reads the TLS files named: only without any, not to fuzz the
        // file system.
        if !config
            .properties()
            .any(|(key, _)| key.ends_with(".location"))
        {
            let _ = config.validate();
        }
        let _ = config.to_rdkafka();
    }
    accepted |= SchemaRegistryConfig::from_properties(&properties).is_ok();
    accepted |= AvroSerdeConfig::from_properties(&properties).is_ok();
    if let Some(endpoint) = properties.get("application.server") {
        if let Ok(host) = HostInfo::parse(endpoint) {
            accepted = true;
            let again = HostInfo::parse(&format!("{}:{}", host.host, host.port));
            assert_eq!(again.ok(), Some(host), "a parsed endpoint parses again");
        }
    }
    if let Some(guarantee) = properties.get("processing.guarantee") {
        accepted |= ProcessingGuarantee::parse(guarantee).is_ok();
    }
    accepted
}

/// Configurations as users write them.
pub fn client_config_seeds() -> Vec<Vec<u8>> {
    [
        "KAFKA_BOOTSTRAP_SERVERS=localhost:9092\nKAFKA_CLIENT_ID=plant01-reader\nKAFKA_GROUP_ID=readers\n",
        "KAFKA_BOOTSTRAP_SERVERS=broker-1:9093,broker-2:9093\nKAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT\nKAFKA_SASL_MECHANISM=SCRAM-SHA-256\nKAFKA_SASL_USERNAME=alice\nKAFKA_SASL_PASSWORD=secret\n",
        "KAFKA_BOOTSTRAP_SERVERS=localhost:9092\nKAFKA_SECURITY_PROTOCOL=sasl_plaintext\nKAFKA_SASL_MECHANISM=OAUTHBEARER\n",
        "schema.registry.url=http://registry-1:8081,http://registry-2:8081/\nbasic.auth.user.info=user:pass\nmax.retries=5\nretries.wait.ms=100\nlatest.cache.ttl.sec=60\nauto.register.schemas=false\nuse.latest.version=true\n",
        "schema.registry.url=mock://scope\nbearer.auth.credentials.source=STATIC_TOKEN\nbearer.auth.token=abc\nvalue.subject.name.strategy=io.confluent.kafka.serializers.subject.TopicRecordNameStrategy\nuse.schema.id=7\n",
        "application.server=localhost:7070\nprocessing.guarantee=exactly_once_v2\n",
        "application.server=[::1]:7070\nprocessing.guarantee=at_least_once\n",
    ]
    .iter()
    .map(|text| text.as_bytes().to_vec())
    .collect()
}
