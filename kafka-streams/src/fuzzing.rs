//! Entry points for the fuzz targets (`fuzz/`, replayed on the stable toolchain by
//! `fuzz-targets/tests/regression.rs`): each feeds arbitrary bytes to a decoder of bytes
//! that other processes write, the way the library meets them. Decoders may refuse
//! the bytes; the only failures are panics, hangs and huge allocations. Each returns
//! whether the bytes decoded, so the seed corpora can be checked to reach the decoders.
//!
//! Not part of the API: hidden from the docs and free to change.
//!
//! The changelog and windowed-key inputs start with a selector byte (which format, taken
//! modulo their number); changelog records after it are framed as `[key length: u8][key]
//! [value length: u8, 255 = tombstone][value]`, repeated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::{
    BytesSerde, Deserializer, MessageField, SerdeContext, Serializer, StringSerde,
};
use kafka_client::Headers;

use crate::dsl::internals::table_ops::ChangeSerde;
use crate::dsl::Change;
use crate::state::{
    changelog_value_round_trips, restore_and_evict_all, sample_changelog_values,
    ChangelogPartition, CheckpointEntry, CheckpointFile, ReadOnlyWindowStore, RestorableStore,
    RestoreRecord, SegmentedSessionStore, SegmentedWindowStore, SessionStore, TimestampedSerde,
    ValueAndTimestamp,
};
use crate::windowed::serdes::{
    SessionWindowedDeserializer, SessionWindowedSerializer, TimeWindowedDeserializer,
    TimeWindowedSerializer,
};
use crate::windowed::{Window, Windowed};

const TOPIC: &str = "fuzz";
/// The value length byte of a tombstone in the changelog framing.
const TOMBSTONE: u8 = u8::MAX;
/// Retention and segment interval of the window and session stores restored into.
const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
const SEGMENT_INTERVAL_MS: i64 = 60 * 60 * 1000;

fn with_ctx<T>(field: MessageField, f: impl FnOnce(&SerdeContext<'_>) -> T) -> T {
    let headers = Headers::new();
    f(&SerdeContext::new(TOPIC, field, &headers))
}

fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(selector, rest)| (*selector, rest))
}

/// Windowed-key formats, by selector.
const WINDOWED_KEY_FORMATS: u8 = 4;

/// Windowed keys (`windowed::serdes`): selector 0 and 1 read a time-windowed key of
/// raw bytes / UTF-8 with a window size taken from the next 8 bytes, 2 and 3 a
/// session-windowed key of raw bytes / UTF-8. A key that decodes must serialize back
/// to the same bytes.
pub fn windowed_key(data: &[u8]) -> bool {
    let Some((selector, rest)) = split_selector(data) else {
        return false;
    };
    with_ctx(MessageField::Key, |ctx| {
        match selector % WINDOWED_KEY_FORMATS {
            0 | 1 => {
                let Some((size, key)) = rest.split_first_chunk::<8>() else {
                    return false;
                };
                let size = Duration::from_millis(u64::from_be_bytes(*size));
                if selector % 2 == 0 {
                    time_windowed_round_trip::<Vec<u8>, _>(BytesSerde, size, key, ctx)
                } else {
                    time_windowed_round_trip::<String, _>(StringSerde, size, key, ctx)
                }
            }
            2 => session_windowed_round_trip::<Vec<u8>, _>(BytesSerde, rest, ctx),
            _ => session_windowed_round_trip::<String, _>(StringSerde, rest, ctx),
        }
    })
}

fn time_windowed_round_trip<K, S>(
    serde: S,
    size: Duration,
    bytes: &[u8],
    ctx: &SerdeContext<'_>,
) -> bool
where
    S: Serializer<K> + Deserializer<K> + Clone,
{
    let Ok(deserializer) = TimeWindowedDeserializer::new(serde.clone(), size) else {
        return false;
    };
    let Ok(key) = deserializer.deserialize(Some(bytes), ctx) else {
        return false;
    };
    let again = TimeWindowedSerializer::new(serde).serialize(&key, ctx);
    assert_eq!(
        again.ok().flatten().as_deref(),
        Some(bytes),
        "a time-windowed key must serialize back to the bytes it was read from"
    );
    true
}

fn session_windowed_round_trip<K, S>(serde: S, bytes: &[u8], ctx: &SerdeContext<'_>) -> bool
where
    S: Serializer<K> + Deserializer<K> + Clone,
{
    let Ok(key) = SessionWindowedDeserializer::new(serde.clone()).deserialize(Some(bytes), ctx)
    else {
        return false;
    };
    let again = SessionWindowedSerializer::new(serde).serialize(&key, ctx);
    assert_eq!(
        again.ok().flatten().as_deref(),
        Some(bytes),
        "a session-windowed key must serialize back to the bytes it was read from"
    );
    true
}

/// Windowed keys as the serializers write them.
pub fn windowed_key_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    with_ctx(MessageField::Key, |ctx| {
        let time_window =
            Window::time_window(1_700_000_000_000, 1_700_000_060_000).expect("a valid time window");
        let session = Window::new(1_700_000_000_000, 1_700_000_005_000).expect("a valid session");
        let size = 60_000_u64.to_be_bytes();
        for (selector, key) in [(0u8, "sensor-1"), (1, "temperature"), (1, "")] {
            let key = Windowed::new(key.to_owned(), time_window);
            let bytes = TimeWindowedSerializer::new(StringSerde)
                .serialize(&key, ctx)
                .expect("serializable")
                .expect("not null");
            seeds.push([&[selector][..], &size, &bytes].concat());
        }
        for (selector, key) in [(2u8, "sensor-1"), (3, "s"), (3, "")] {
            let key = Windowed::new(key.to_owned(), session);
            let bytes = SessionWindowedSerializer::new(StringSerde)
                .serialize(&key, ctx)
                .expect("serializable")
                .expect("not null");
            seeds.push([&[selector][..], &bytes].concat());
        }
    });
    seeds
}

/// A task's `.checkpoint` file (`state::checkpoint`). Entries read from a file must
/// render to text that reads back to the same entries.
pub fn checkpoint(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let file = CheckpointFile::in_dir("fuzz-task");
    let Ok(entries) = file.parse(text) else {
        return false;
    };
    let rendered = CheckpointFile::render(&entries).expect("read entries can be written");
    assert_eq!(
        file.parse(&rendered).ok().as_ref(),
        Some(&entries),
        "a checkpoint file must read back what was written from it"
    );
    true
}

/// Checkpoint files as the state manager writes them.
pub fn checkpoint_seeds() -> Vec<Vec<u8>> {
    let entry = |topic: &str, partition, offset| CheckpointEntry {
        changelog: ChangelogPartition {
            topic: topic.to_owned(),
            partition,
        },
        offset,
    };
    [
        BTreeMap::new(),
        BTreeMap::from([("counts".to_owned(), entry("app-counts-changelog", 3, 1042))]),
        BTreeMap::from([
            ("counts".to_owned(), entry("app-counts-changelog", 0, 0)),
            (
                "KSTREAM-AGGREGATE-STATE-STORE-0000000003".to_owned(),
                entry(
                    "app-KSTREAM-AGGREGATE-STATE-STORE-0000000003-changelog",
                    2_147_483_647,
                    i64::MAX,
                ),
            ),
        ]),
    ]
    .iter()
    .map(|entries| {
        CheckpointFile::render(entries)
            .expect("valid names")
            .into_bytes()
    })
    .collect()
}

/// Changelog formats, by selector.
const CHANGELOG_FORMATS: u8 = 5;

/// Changelog and repartition record values and keys: selector 0 reads a
/// `ValueAndTimestamp` (timestamped stores), 1 a KTable `Change` (table repartition
/// topics), 2 restores window-store changelog records into an in-memory window store
/// and reads them back as `ValueAndTimestamp`s, 3 does that for a session store, 4
/// restores suppression-buffer changelog records and evicts them all.
pub fn changelog_record(data: &[u8]) -> bool {
    let Some((selector, rest)) = split_selector(data) else {
        return false;
    };
    match selector % CHANGELOG_FORMATS {
        0 => timestamped_value(rest),
        1 => table_change(rest),
        2 => window_changelog(&records_of(rest)),
        3 => session_changelog(&records_of(rest)),
        _ => suppression_changelog(&records_of(rest)),
    }
}

fn timestamped_value(bytes: &[u8]) -> bool {
    with_ctx(MessageField::Value, |ctx| {
        let serde = TimestampedSerde::<Vec<u8>>(Arc::new(BytesSerde));
        let Ok(value) = serde.deserialize(Some(bytes), ctx) else {
            return false;
        };
        let again = serde.serialize(&value, ctx);
        assert_eq!(
            again.ok().flatten().as_deref(),
            Some(bytes),
            "a value and timestamp must serialize back to the bytes it was read from"
        );
        true
    })
}

fn table_change(bytes: &[u8]) -> bool {
    with_ctx(MessageField::Value, |ctx| {
        let serde = ChangeSerde::<Vec<u8>>(Arc::new(BytesSerde));
        let Ok(change) = serde.deserialize(Some(bytes), ctx) else {
            return false;
        };
        let again = serde
            .serialize(&change, ctx)
            .expect("a read change can be written");
        assert_eq!(
            serde.deserialize(again.as_deref(), ctx).ok(),
            Some(change),
            "a table change must read back what was written from it"
        );
        true
    })
}

/// Key/value pairs framed as `[key length: u8][key][value length: u8, 255 = null]
/// [value]`, repeated; a truncated tail is dropped. The changelog targets' records and
/// the header targets' headers.
pub fn framed_pairs(mut bytes: &[u8]) -> Vec<(&[u8], Option<&[u8]>)> {
    fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
        let (head, rest) = bytes.split_at_checked(len)?;
        *bytes = rest;
        Some(head)
    }
    let mut pairs = Vec::new();
    loop {
        let Some(key) = take(&mut bytes, 1).and_then(|len| take(&mut bytes, len[0].into())) else {
            return pairs;
        };
        let value = match take(&mut bytes, 1) {
            None => return pairs,
            Some([TOMBSTONE]) => None,
            Some(len) => match take(&mut bytes, len[0].into()) {
                Some(value) => Some(value),
                None => return pairs,
            },
        };
        pairs.push((key, value));
    }
}

/// Changelog records of [`framed_pairs`], at offsets (and timestamps) from 0.
fn records_of(bytes: &[u8]) -> Vec<RestoreRecord<'_>> {
    (0..)
        .zip(framed_pairs(bytes))
        .map(|(offset, (key, value))| RestoreRecord {
            key,
            value,
            offset,
            timestamp: offset,
        })
        .collect()
}

/// The framing [`framed_pairs`] reads (keys and values must be shorter than 255 bytes).
pub fn frame(records: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        out.push(u8::try_from(key.len()).expect("a short key"));
        out.extend_from_slice(key);
        match value {
            Some(value) => {
                let len = u8::try_from(value.len())
                    .ok()
                    .filter(|len| *len != TOMBSTONE)
                    .expect("a short value");
                out.push(len);
                out.extend_from_slice(value);
            }
            None => out.push(TOMBSTONE),
        }
    }
    out
}

fn decode_timestamped(bytes: &[u8]) -> bool {
    with_ctx(MessageField::Value, |ctx| {
        TimestampedSerde::<Vec<u8>>(Arc::new(BytesSerde))
            .deserialize(Some(bytes), ctx)
            .is_ok()
    })
}

fn window_changelog(records: &[RestoreRecord<'_>]) -> bool {
    let mut store =
        SegmentedWindowStore::in_memory("fuzz-window", None, RETENTION_MS, SEGMENT_INTERVAL_MS)
            .expect("a valid segmentation");
    if store.restore_batch(records).is_err() {
        return false;
    }
    let Ok(entries) = store.all() else {
        return false;
    };
    let mut all_decoded = true;
    for entry in entries {
        all_decoded &= entry.is_ok_and(|entry| decode_timestamped(&entry.value));
    }
    all_decoded
}

fn session_changelog(records: &[RestoreRecord<'_>]) -> bool {
    let mut store =
        SegmentedSessionStore::in_memory("fuzz-session", None, RETENTION_MS, SEGMENT_INTERVAL_MS)
            .expect("a valid segmentation");
    if store.restore_batch(records).is_err() {
        return false;
    }
    let Ok(sessions) = store.find_sessions_ending_between(0, i64::MAX) else {
        return false;
    };
    let mut all_read = true;
    for session in sessions {
        all_read &= session.is_ok_and(|session| session.start <= session.end);
    }
    all_read
}

fn suppression_changelog(records: &[RestoreRecord<'_>]) -> bool {
    for value in records.iter().filter_map(|record| record.value) {
        assert_ne!(
            changelog_value_round_trips(value),
            Some(false),
            "a suppression buffer value must read back what was written from it"
        );
    }
    restore_and_evict_all(records).is_ok()
}

/// Changelog records as the stores and serdes write them.
pub fn changelog_record_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    with_ctx(MessageField::Value, |ctx| {
        let stamped = TimestampedSerde::<Vec<u8>>(Arc::new(BytesSerde));
        let value_and_timestamp = |value: &[u8], timestamp| {
            stamped
                .serialize(
                    &ValueAndTimestamp {
                        value: value.to_vec(),
                        timestamp,
                    },
                    ctx,
                )
                .expect("serializable")
                .expect("not null")
        };
        let hello = value_and_timestamp(b"hello", 1_700_000_000_000);
        let count = value_and_timestamp(&7_i64.to_be_bytes(), 5_000);
        seeds.push([&[0u8][..], &hello].concat());

        let change = ChangeSerde::<Vec<u8>>(Arc::new(BytesSerde));
        for (new, old) in [
            (Some(b"new".to_vec()), Some(b"old".to_vec())),
            (Some(b"new".to_vec()), None),
            (None, Some(b"old".to_vec())),
        ] {
            let bytes = change
                .serialize(&Change { new, old }, ctx)
                .expect("serializable")
                .expect("not null");
            seeds.push([&[1u8][..], &bytes].concat());
        }

        let window_keys = [
            crate::state::window_key(b"sensor-1", 3_600_000, 0),
            crate::state::window_key(b"sensor-2", 7_200_000, 1),
        ];
        seeds.push(
            [
                &[2u8][..],
                &frame(&[
                    (&window_keys[0], Some(&hello)),
                    (&window_keys[1], Some(&count)),
                    (&window_keys[0], None),
                ]),
            ]
            .concat(),
        );

        let session_keys = [
            crate::state::session_key(b"user-1", 1_000, 4_000),
            crate::state::session_key(b"user-2", 10_000, 10_000),
        ];
        seeds.push(
            [
                &[3u8][..],
                &frame(&[
                    (&session_keys[0], Some(&count)),
                    (&session_keys[1], Some(&hello)),
                ]),
            ]
            .concat(),
        );

        let buffered = sample_changelog_values();
        let mut records: Vec<(&[u8], Option<&[u8]>)> = buffered
            .iter()
            .zip([&b"k1"[..], b"k2", b"k3"])
            .map(|(value, key)| (key, Some(value.as_slice())))
            .collect();
        records.push((b"k2", None));
        seeds.push([&[4u8][..], &frame(&records)].concat());
    });
    seeds
}
