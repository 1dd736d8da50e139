//! Sinks serialize through the serdes the stream was read with, as they are: a serde's
//! zero-copy `serialize_borrowed` is what the sink calls, for `to()` and for
//! repartition topics alike.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kafka_client::serde::{Deserializer, SerdeContext, SerdeError, Serializer};
use kafka_streams::dsl::{Consumed, StreamsBuilder};
use kafka_streams::test_driver::TopologyTestDriver;

/// A string serde that counts which serialize entry point the sinks call.
#[derive(Clone, Default)]
struct CountingSerde {
    copied: Arc<AtomicUsize>,
    borrowed: Arc<AtomicUsize>,
}

impl CountingSerde {
    fn counts(&self) -> (usize, usize) {
        (
            self.borrowed.load(Ordering::SeqCst),
            self.copied.load(Ordering::SeqCst),
        )
    }
}

impl Serializer<String> for CountingSerde {
    fn serialize(
        &self,
        data: &String,
        _ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        self.copied.fetch_add(1, Ordering::SeqCst);
        Ok(Some(data.as_bytes().to_vec()))
    }

    fn serialize_borrowed<'a>(
        &self,
        data: &'a String,
        _ctx: &SerdeContext<'_>,
    ) -> Result<Option<Cow<'a, [u8]>>, SerdeError> {
        self.borrowed.fetch_add(1, Ordering::SeqCst);
        Ok(Some(Cow::Borrowed(data.as_bytes())))
    }
}

impl Deserializer<String> for CountingSerde {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        _ctx: &SerdeContext<'_>,
    ) -> Result<String, SerdeError> {
        let bytes = data.ok_or_else(|| SerdeError::custom("null string"))?;
        String::from_utf8(bytes.to_vec()).map_err(|e| SerdeError::custom(e.to_string()))
    }
}

#[test]
fn sinks_with_the_streams_serdes_serialize_borrowed() -> anyhow::Result<()> {
    let keys = CountingSerde::default();
    let values = CountingSerde::default();
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("in", Consumed::with(keys.clone(), values.clone()))
        .filter(|_, v| !v.is_empty())
        .repartition()
        .to("out");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, String>("in");
    for (k, v) in [("a", "fern"), ("b", "moss"), ("c", "ivy")] {
        input.pipe_input(k.to_owned(), v.to_owned())?;
    }
    let out = driver
        .create_output_topic::<String, String>("out")
        .read_values_to_list()?;
    assert_eq!(out, vec!["fern", "moss", "ivy"]);
    // Three records through two sinks (the repartition topic and `out`), every one
    // borrowed, none copied.
    assert_eq!(keys.counts(), (6, 0));
    assert_eq!(values.counts(), (6, 0));
    Ok(())
}
