//! Key encoding for windowed stores, byte-compatible with Kafka's `WindowKeySchema`:
//! `[record key][window start: 8 bytes big-endian][sequence number: 4 bytes big-endian]`.
//!
//! Big-endian start times make the entries of one record key sort by window start, so
//! fetching a key's windows between two times is one range scan
//! ([`key_time_range`]). Since record keys have variable length, such a scan can also
//! meet other keys that start with the same bytes; [`matches_key`] filters them out, as
//! Kafka's `hasNextCondition` does. The sequence number keeps duplicates apart in
//! stores that retain them (join windows); other stores use 0.
//!
//! Window starts are epoch milliseconds and must not be negative (they would sort after
//! positive ones).

/// Bytes of the window-start suffix.
pub const TIMESTAMP_SIZE: usize = 8;
/// Bytes of the sequence-number suffix.
pub const SEQNUM_SIZE: usize = 4;
const SUFFIX: usize = TIMESTAMP_SIZE + SEQNUM_SIZE;

/// A decoded windowed store key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowedKey<'a> {
    /// The record key's bytes.
    pub key: &'a [u8],
    /// Window start, epoch milliseconds.
    pub window_start: i64,
    /// Sequence number (0 unless duplicates are retained).
    pub seqnum: u32,
}

/// Encodes the store key of `key`'s window starting at `window_start`.
pub fn to_store_key(key: &[u8], window_start: i64, seqnum: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + SUFFIX);
    out.extend_from_slice(key);
    out.extend_from_slice(&window_start.to_be_bytes());
    out.extend_from_slice(&seqnum.to_be_bytes());
    out
}

/// Decodes a store key; `None` if it is too short to be one.
pub fn from_store_key(bytes: &[u8]) -> Option<WindowedKey<'_>> {
    let split = bytes.len().checked_sub(SUFFIX)?;
    let (key, suffix) = bytes.split_at(split);
    let window_start = i64::from_be_bytes(suffix[..TIMESTAMP_SIZE].try_into().ok()?);
    let seqnum = u32::from_be_bytes(suffix[TIMESTAMP_SIZE..].try_into().ok()?);
    Some(WindowedKey {
        key,
        window_start,
        seqnum,
    })
}

/// Inclusive store-key bounds covering `key`'s windows starting in
/// `[from_start, to_start]`. Filter the scanned entries with [`matches_key`].
pub fn key_time_range(key: &[u8], from_start: i64, to_start: i64) -> (Vec<u8>, Vec<u8>) {
    (
        to_store_key(key, from_start, 0),
        to_store_key(key, to_start, u32::MAX),
    )
}

/// Whether the store key `bytes` belongs to record key `key` with a window start in
/// `[from_start, to_start]`.
pub fn matches_key(bytes: &[u8], key: &[u8], from_start: i64, to_start: i64) -> bool {
    from_store_key(bytes)
        .is_some_and(|w| w.key == key && w.window_start >= from_start && w.window_start <= to_start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{InMemoryStore, KeyValueStore, ReadOnlyKeyValueStore, StateResult};
    use std::ops::Bound;

    #[test]
    fn round_trip_and_kafka_layout() {
        let bytes = to_store_key(b"s1", 60_000, 0);
        assert_eq!(bytes.len(), 2 + 12);
        assert_eq!(&bytes[2..10], &60_000_i64.to_be_bytes());
        let decoded = from_store_key(&bytes).unwrap();
        assert_eq!(decoded.key, b"s1");
        assert_eq!(decoded.window_start, 60_000);
        assert_eq!(decoded.seqnum, 0);
        assert_eq!(from_store_key(b"short"), None);
    }

    #[test]
    fn range_scan_returns_one_keys_windows_in_time_order() {
        let mut store = InMemoryStore::new("windows");
        // Windows of "s1" and of "s1x", whose bytes share the prefix, out of order.
        for (key, start) in [
            (&b"s1"[..], 120_000),
            (b"s1", 0),
            (b"s1x", 60_000),
            (b"s1", 60_000),
            (b"s1", 180_000),
            (b"s2", 60_000),
        ] {
            store
                .put(&to_store_key(key, start, 0), &start.to_be_bytes())
                .unwrap();
        }
        let (from, to) = key_time_range(b"s1", 0, 120_000);
        let starts: Vec<i64> = store
            .range(Bound::Included(&from), Bound::Included(&to))
            .unwrap()
            .collect::<StateResult<Vec<_>>>()
            .unwrap()
            .into_iter()
            .filter(|(k, _)| matches_key(k, b"s1", 0, 120_000))
            .map(|(k, _)| from_store_key(&k).unwrap().window_start)
            .collect();
        assert_eq!(starts, vec![0, 60_000, 120_000]);
    }
}
