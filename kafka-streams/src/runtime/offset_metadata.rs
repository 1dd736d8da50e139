//! The metadata string a task commits with each input partition's offset (Kafka's
//! `TopicPartitionMetadata`), in Kafka Streams' own format, so either side reads what
//! the other committed.
//!
//! # Format (version 2, Kafka's `LATEST_MAGIC_BYTE`)
//! The standard base64 (with padding) of these big-endian bytes:
//! - `u8` version: 2;
//! - `i64` partition time: the largest timestamp seen on the partition, -1 when
//!   unknown (Kafka's `RecordQueue.UNKNOWN`);
//! - the task's processor metadata (see `processor/metadata.rs` for its layout;
//!   nothing when it is empty).
//!
//! Version 1 (Kafka before 3.x's processor metadata) is the version byte and the
//! partition time only. An empty string is no metadata. Anything else (another
//! version, bytes that are not base64, a truncated body) is reported as an
//! [`OffsetMetadataError`]; the task logs a warning and starts without it, as Kafka
//! does.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::processor::metadata::{MetadataDecodeError, ProcessorMetadata, Reader};

/// The version this code writes (Kafka's `TopicPartitionMetadata.LATEST_MAGIC_BYTE`).
pub(crate) const LATEST_MAGIC_BYTE: u8 = 2;

/// A partition time not known (Kafka's `RecordQueue.UNKNOWN`).
pub(crate) const UNKNOWN_PARTITION_TIME: i64 = -1;

/// Why a committed offset's metadata could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OffsetMetadataError {
    /// The string is not base64.
    #[error("offset metadata is not base64: {0}")]
    NotBase64(String),
    /// A version this code does not know (a newer Kafka Streams wrote it).
    #[error("unsupported offset metadata version {found} (supported: 1 to {LATEST_MAGIC_BYTE})")]
    UnsupportedVersion { found: u8 },
    /// The body is malformed.
    #[error("malformed offset metadata: {0}")]
    Malformed(#[from] MetadataDecodeError),
}

/// What a task commits with one input partition's offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicPartitionMetadata {
    /// The partition's time ([`UNKNOWN_PARTITION_TIME`] when unknown).
    pub partition_time: i64,
    /// The task's processor metadata.
    pub processor_metadata: ProcessorMetadata,
}

impl TopicPartitionMetadata {
    /// The metadata string (see the module docs) of `partition_time` and
    /// `processor_metadata` (borrowed: a task encodes one per partition at every
    /// commit).
    pub fn encode(partition_time: i64, processor_metadata: &ProcessorMetadata) -> String {
        let mut bytes = Vec::with_capacity(64);
        bytes.push(LATEST_MAGIC_BYTE);
        bytes.extend_from_slice(&partition_time.to_be_bytes());
        processor_metadata.serialize_into(&mut bytes);
        STANDARD.encode(bytes)
    }

    /// Reads a metadata string (see the module docs). An empty one is no metadata:
    /// the partition time unknown, no processor metadata.
    pub fn decode(encoded: &[u8]) -> Result<Self, OffsetMetadataError> {
        let mut decoded = TopicPartitionMetadata {
            partition_time: UNKNOWN_PARTITION_TIME,
            processor_metadata: ProcessorMetadata::default(),
        };
        if encoded.is_empty() {
            return Ok(decoded);
        }
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|e| OffsetMetadataError::NotBase64(e.to_string()))?;
        let mut reader = Reader {
            bytes: &bytes,
            at: 0,
        };
        let [version] = reader.array::<1>("version")?;
        match version {
            1 | LATEST_MAGIC_BYTE => {
                decoded.partition_time = i64::from_be_bytes(reader.array("partition time")?);
            }
            found => return Err(OffsetMetadataError::UnsupportedVersion { found }),
        }
        if version == LATEST_MAGIC_BYTE {
            decoded.processor_metadata = ProcessorMetadata::deserialize(&bytes[reader.at..])?;
        }
        Ok(decoded)
    }
}

/// The task's processor metadata from what its input partitions committed (Kafka's
/// `initializeTaskTimeAndProcessorMetadata`): the largest value per key. A partition
/// whose metadata cannot be read is skipped with a warning naming it, as in Kafka.
pub(crate) fn merge_committed<'a>(
    task: crate::processor::TaskId,
    committed: impl IntoIterator<Item = (&'a kafka_client::TopicPartition, &'a [u8])>,
) -> ProcessorMetadata {
    let mut merged = ProcessorMetadata::default();
    for (partition, encoded) in committed {
        match TopicPartitionMetadata::decode(encoded) {
            Ok(decoded) => merged.merge_max(&decoded.processor_metadata),
            Err(error) => {
                tracing::warn!(task = %task, %partition, %error, "ignoring the metadata committed with the partition's offset");
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::metadata::tests::metadata as processor_metadata;
    use kafka_client::TopicPartition;
    use proptest::prelude::*;

    fn encoded(m: &TopicPartitionMetadata) -> String {
        TopicPartitionMetadata::encode(m.partition_time, &m.processor_metadata)
    }

    fn metadata(partition_time: i64, entries: &[(&str, i64)]) -> TopicPartitionMetadata {
        TopicPartitionMetadata {
            partition_time,
            processor_metadata: processor_metadata(entries),
        }
    }

    #[test]
    fn round_trips() {
        for m in [
            metadata(UNKNOWN_PARTITION_TIME, &[]),
            metadata(1_700_000_000_000, &[]),
            metadata(42, &[("KSTREAM-AGGREGATE-STATE-STORE-0000000001", 60_000)]),
            metadata(i64::MIN, &[("a", i64::MAX), ("b", i64::MIN)]),
        ] {
            assert_eq!(
                TopicPartitionMetadata::decode(encoded(&m).as_bytes()),
                Ok(m)
            );
        }
    }

    #[test]
    fn reads_what_kafka_streams_writes() {
        // Kafka 4.1's TopicPartitionMetadata(5, {"ab" -> 7}).encode().
        let kafka = "AgAAAAAAAAAFAAAAAQAAAAJhYgAAAAAAAAAH";
        assert_eq!(encoded(&metadata(5, &[("ab", 7)])), kafka);
        assert_eq!(
            TopicPartitionMetadata::decode(kafka.as_bytes()),
            Ok(metadata(5, &[("ab", 7)]))
        );
        // Version 1: the partition time only.
        let v1 = STANDARD.encode([1, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(
            TopicPartitionMetadata::decode(v1.as_bytes()),
            Ok(metadata(9, &[]))
        );
        // Nothing committed with the offset.
        assert_eq!(
            TopicPartitionMetadata::decode(b""),
            Ok(metadata(UNKNOWN_PARTITION_TIME, &[]))
        );
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            TopicPartitionMetadata::decode(b"not base64!"),
            Err(OffsetMetadataError::NotBase64(_))
        ));
        let v3 = STANDARD.encode([3, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(
            TopicPartitionMetadata::decode(v3.as_bytes()),
            Err(OffsetMetadataError::UnsupportedVersion { found: 3 })
        );
        let short = STANDARD.encode([2, 0, 0]);
        assert!(matches!(
            TopicPartitionMetadata::decode(short.as_bytes()),
            Err(OffsetMetadataError::Malformed(
                MetadataDecodeError::Truncated {
                    field: "partition time",
                    ..
                }
            ))
        ));
        let cut = encoded(&metadata(5, &[("ab", 7)]));
        let cut = STANDARD.decode(cut).expect("valid base64");
        let cut = STANDARD.encode(&cut[..cut.len() - 1]);
        assert!(matches!(
            TopicPartitionMetadata::decode(cut.as_bytes()),
            Err(OffsetMetadataError::Malformed(
                MetadataDecodeError::Truncated { field: "value", .. }
            ))
        ));
        // Not UTF-8 at all (a non-Java client may commit any bytes).
        assert!(TopicPartitionMetadata::decode(&[0xff, 0xfe, 0x00]).is_err());
    }

    #[test]
    fn merging_partitions_keeps_the_largest_value_and_skips_garbage() {
        let a = TopicPartition::new("in", 0);
        let b = TopicPartition::new("other", 0);
        let c = TopicPartition::new("third", 0);
        let first = encoded(&metadata(1, &[("s1", 100), ("s2", 5)]));
        let second = encoded(&metadata(2, &[("s1", 50), ("s2", 9)]));
        let merged = merge_committed(
            crate::processor::TaskId {
                subtopology: 0,
                partition: 0,
            },
            [
                (&a, first.as_bytes()),
                (&b, second.as_bytes()),
                (&c, &b"garbage"[..]),
            ],
        );
        assert_eq!(merged, processor_metadata(&[("s1", 100), ("s2", 9)]));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_input(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = TopicPartitionMetadata::decode(&bytes);
            let as_base64 = STANDARD.encode(&bytes);
            let _ = TopicPartitionMetadata::decode(as_base64.as_bytes());
            // Behind the current version byte, so the body parsers see them too.
            let versioned: Vec<u8> = [LATEST_MAGIC_BYTE].iter().chain(&bytes).copied().collect();
            let _ = TopicPartitionMetadata::decode(STANDARD.encode(versioned).as_bytes());
            let _ = ProcessorMetadata::deserialize(&bytes);
        }

        #[test]
        fn round_trips_any_metadata(
            partition_time in any::<i64>(),
            entries in proptest::collection::btree_map(".{0,12}", any::<i64>(), 0..5),
        ) {
            let mut m = ProcessorMetadata::default();
            for (k, v) in &entries {
                m.put(k, *v);
            }
            let original = TopicPartitionMetadata { partition_time, processor_metadata: m };
            prop_assert_eq!(TopicPartitionMetadata::decode(encoded(&original).as_bytes()), Ok(original));
        }
    }
}
