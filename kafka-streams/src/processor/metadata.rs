//! [`ProcessorMetadata`] (Kafka's `ProcessorMetadata`): small per-task facts that
//! processors keep across restarts, committed with the task's input offsets. Today
//! the on-window-close windowed aggregations keep there, under their store's name,
//! the window close time up to which they emitted final results, so that a restarted
//! task does not emit those finals again.
//!
//! The runtime puts it into the offset-commit metadata of every input partition it
//! commits (see `runtime/offset_metadata.rs` for that envelope) and, when a task is
//! created, merges what the task's partitions carry (the largest value per key).
//!
//! # Binary layout (Kafka's `ProcessorMetadata.serialize`, big-endian)
//! - empty metadata: no bytes at all;
//! - otherwise: `i32` entry count, then per entry `i32` key length, the key's UTF-8
//!   bytes, and the `i64` value.

use std::collections::BTreeMap;

/// Why committed processor metadata could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MetadataDecodeError {
    /// The bytes end inside the named field.
    #[error("processor metadata ends inside {field} (at byte {at} of {len})")]
    Truncated {
        field: &'static str,
        at: usize,
        len: usize,
    },
    /// A count or length is negative.
    #[error("processor metadata has a negative {field} ({value})")]
    Negative { field: &'static str, value: i32 },
    /// A key is not UTF-8.
    #[error("processor metadata key at byte {at} is not UTF-8")]
    KeyNotUtf8 { at: usize },
    /// Bytes are left after the last entry.
    #[error("processor metadata has {extra} bytes after its last entry")]
    TrailingBytes { extra: usize },
}

/// Processor metadata of one task: a value per key (Kafka supports only `long`
/// values, timestamps). Keys are ordered so that the encoding is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProcessorMetadata {
    entries: BTreeMap<String, i64>,
}

impl ProcessorMetadata {
    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.entries.get(key).copied()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &str, value: i64) {
        match self.entries.get_mut(key) {
            Some(v) => *v = value,
            None => {
                self.entries.insert(key.to_owned(), value);
            }
        }
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Merges `other` in (Kafka's `update`): a missing key is added, an existing one
    /// keeps the larger value. Metadata read from several input partitions of a task
    /// is merged so: each commit writes the task's metadata to every partition it
    /// commits, so the largest value is the latest.
    pub fn merge_max(&mut self, other: &ProcessorMetadata) {
        for (key, &value) in &other.entries {
            let current = self.entries.entry(key.clone()).or_insert(value);
            *current = (*current).max(value);
        }
    }

    /// Appends the binary layout (see the module docs) to `out`.
    pub fn serialize_into(&self, out: &mut Vec<u8>) {
        if self.entries.is_empty() {
            return;
        }
        out.extend_from_slice(&len_i32(self.entries.len()).to_be_bytes());
        for (key, value) in &self.entries {
            out.extend_from_slice(&len_i32(key.len()).to_be_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
    }

    /// Reads the binary layout (see the module docs); all of `bytes` must be used.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, MetadataDecodeError> {
        let mut metadata = ProcessorMetadata::default();
        if bytes.is_empty() {
            return Ok(metadata);
        }
        let mut reader = Reader { bytes, at: 0 };
        let count = reader.non_negative_i32("entry count")?;
        for _ in 0..count {
            let key_len = reader.non_negative_i32("key length")?;
            let key_at = reader.at;
            let key = reader.take(key_len as usize, "key")?;
            let key = std::str::from_utf8(key)
                .map_err(|_| MetadataDecodeError::KeyNotUtf8 { at: key_at })?;
            let value = i64::from_be_bytes(reader.array("value")?);
            metadata.entries.insert(key.to_owned(), value);
        }
        if reader.at < bytes.len() {
            return Err(MetadataDecodeError::TrailingBytes {
                extra: bytes.len() - reader.at,
            });
        }
        Ok(metadata)
    }
}

/// A length as the layout's `i32` (keys and entry counts stay far below its range:
/// a key is a store name, and there is one entry per on-window-close aggregation).
fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Reads big-endian fields off a byte slice, naming the field that is cut short.
pub(crate) struct Reader<'a> {
    pub bytes: &'a [u8],
    pub at: usize,
}

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], MetadataDecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(MetadataDecodeError::Truncated {
                field,
                at: self.at,
                len: self.bytes.len(),
            })?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    pub fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], MetadataDecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N, field)?);
        Ok(array)
    }

    fn non_negative_i32(&mut self, field: &'static str) -> Result<i32, MetadataDecodeError> {
        let value = i32::from_be_bytes(self.array(field)?);
        if value < 0 {
            return Err(MetadataDecodeError::Negative { field, value });
        }
        Ok(value)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Metadata holding `entries`.
    pub(crate) fn metadata(entries: &[(&str, i64)]) -> ProcessorMetadata {
        let mut m = ProcessorMetadata::default();
        for (k, v) in entries {
            m.put(k, *v);
        }
        m
    }

    fn bytes(m: &ProcessorMetadata) -> Vec<u8> {
        let mut out = Vec::new();
        m.serialize_into(&mut out);
        out
    }

    #[test]
    fn round_trips() {
        for m in [
            metadata(&[]),
            metadata(&[("store", 60_000)]),
            metadata(&[("a", i64::MIN), ("b", -1), ("ü-store", i64::MAX), ("", 0)]),
        ] {
            assert_eq!(ProcessorMetadata::deserialize(&bytes(&m)), Ok(m));
        }
    }

    #[test]
    fn layout_is_kafkas() {
        // Kafka's ProcessorMetadata.serialize of {"ab" -> 5}.
        let expected = [0, 0, 0, 1, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0, 0, 0, 0, 5];
        assert_eq!(bytes(&metadata(&[("ab", 5)])), expected);
        assert!(bytes(&metadata(&[])).is_empty());
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let good = bytes(&metadata(&[("ab", 5)]));
        for cut in 1..good.len() {
            assert!(
                matches!(
                    ProcessorMetadata::deserialize(&good[..cut]),
                    Err(MetadataDecodeError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            ProcessorMetadata::deserialize(&trailing),
            Err(MetadataDecodeError::TrailingBytes { extra: 1 })
        );
        assert_eq!(
            ProcessorMetadata::deserialize(&[0xff, 0xff, 0xff, 0xff]),
            Err(MetadataDecodeError::Negative {
                field: "entry count",
                value: -1
            })
        );
        // A huge entry count with no entries behind it allocates nothing up front.
        assert!(matches!(
            ProcessorMetadata::deserialize(&[0x7f, 0xff, 0xff, 0xff]),
            Err(MetadataDecodeError::Truncated {
                field: "key length",
                ..
            })
        ));
        let not_utf8 = [0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 5];
        assert_eq!(
            ProcessorMetadata::deserialize(&not_utf8),
            Err(MetadataDecodeError::KeyNotUtf8 { at: 8 })
        );
    }

    #[test]
    fn merge_keeps_the_largest_value_per_key() {
        let mut m = metadata(&[("a", 10), ("b", 5)]);
        m.merge_max(&metadata(&[("a", 7), ("b", 9), ("c", -3)]));
        assert_eq!(m, metadata(&[("a", 10), ("b", 9), ("c", -3)]));
    }
}
