//! `Deserializer::reads_headers` of every deserializer kafka-streams defines: each
//! wraps the serdes it is given and reads no header itself, so it must say `true`
//! exactly when a wrapped serde does. A wrapper saying `false` over a serde that reads
//! headers would make the typed consumer hand that serde empty headers: these tests
//! fail then.

use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::{
    Deserializer, MessageField, SerdeContext, SerdeError, Serializer, StringSerde,
};
use kafka_client::Headers;

use super::fk_join_ops::{ResponseWrapperSerde, SubscriptionWrapperSerde};
use super::stream_join_ops::{LeftOrRightListSerde, TimestampedKeyAndJoinSideSerde};
use super::table_ops::ChangeSerde;
use crate::dsl::options::SharedSerde;
use crate::state::TimestampedSerde;
use crate::windowed::serdes::{
    SessionWindowedDeserializer, SessionWindowedSerde, TimeWindowedDeserializer, TimeWindowedSerde,
};
use crate::windowed::{Window, Windowed};

/// Strings whose decoding depends on the record's `tenant` header (a deserializer
/// that reads headers, such as one taking a schema id from a header).
struct TenantTagged;

/// Written as the string serde writes them.
impl Serializer<String> for TenantTagged {
    fn serialize(
        &self,
        data: &String,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        StringSerde.serialize(data, ctx)
    }
}

impl Deserializer<String> for TenantTagged {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<String, SerdeError> {
        let tenant = String::from_utf8_lossy(ctx.headers.last("tenant").unwrap_or_default());
        Ok(format!(
            "{tenant}/{}",
            String::from_utf8_lossy(data.unwrap_or_default())
        ))
    }
}

fn reading() -> SharedSerde<String> {
    Arc::new(TenantTagged)
}

fn plain() -> SharedSerde<String> {
    Arc::new(StringSerde)
}

/// `deserializer` over a serde that reads headers, and over one that doesn't.
fn declares<T>(name: &str, over_reader: impl Deserializer<T>, over_plain: impl Deserializer<T>) {
    assert!(
        over_reader.reads_headers(),
        "{name} over a deserializer that reads headers must say it reads them"
    );
    assert!(
        !over_plain.reads_headers(),
        "{name} over the string serde reads no headers: header parsing can be skipped"
    );
}

#[test]
fn internal_serdes_read_headers_exactly_when_a_wrapped_serde_does() {
    declares("ChangeSerde", ChangeSerde(reading()), ChangeSerde(plain()));
    declares(
        "SubscriptionWrapperSerde",
        SubscriptionWrapperSerde(reading()),
        SubscriptionWrapperSerde(plain()),
    );
    declares(
        "ResponseWrapperSerde",
        ResponseWrapperSerde(reading()),
        ResponseWrapperSerde(plain()),
    );
    declares(
        "TimestampedKeyAndJoinSideSerde",
        TimestampedKeyAndJoinSideSerde(reading()),
        TimestampedKeyAndJoinSideSerde(plain()),
    );
    declares(
        "TimestampedSerde",
        TimestampedSerde(reading()),
        TimestampedSerde(plain()),
    );
    // Either side reading headers is enough.
    for (left, right) in [(reading(), plain()), (plain(), reading())] {
        declares(
            "LeftOrRightListSerde",
            LeftOrRightListSerde { left, right },
            LeftOrRightListSerde {
                left: plain(),
                right: plain(),
            },
        );
    }
}

#[test]
fn windowed_key_deserializers_pass_the_headers_to_the_key_deserializer() {
    let size = Duration::from_secs(1);
    let time_serde = || TimeWindowedSerde::new(TenantTagged, size).unwrap();
    declares(
        "TimeWindowedSerde",
        time_serde(),
        TimeWindowedSerde::new(StringSerde, size).unwrap(),
    );
    declares(
        "TimeWindowedDeserializer",
        TimeWindowedDeserializer::new(TenantTagged, size).unwrap(),
        TimeWindowedDeserializer::new(StringSerde, size).unwrap(),
    );
    declares(
        "SessionWindowedSerde",
        SessionWindowedSerde::new(TenantTagged),
        SessionWindowedSerde::new(StringSerde),
    );
    declares(
        "SessionWindowedDeserializer",
        SessionWindowedDeserializer::new(TenantTagged),
        SessionWindowedDeserializer::new(StringSerde),
    );

    // What the declaration protects: the key decodes differently under other headers.
    let key = Windowed {
        key: "sensor-1".to_owned(),
        window: Window::new(1000, 2000).unwrap(),
    };
    let no_headers = Headers::new();
    let tenant_a = Headers::new().with("tenant", "a");
    let ctx = |headers| SerdeContext::new("t", MessageField::Key, headers);
    let bytes = time_serde().serialize(&key, &ctx(&no_headers)).unwrap();
    let decode = |headers| {
        TimeWindowedDeserializer::new(TenantTagged, size)
            .unwrap()
            .deserialize(bytes.as_deref(), &ctx(headers))
            .unwrap()
            .key
    };
    assert_eq!(decode(&no_headers), "/sensor-1");
    assert_eq!(decode(&tenant_a), "a/sensor-1");
}
