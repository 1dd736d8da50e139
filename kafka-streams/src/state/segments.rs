//! Time-segmented byte storage shared by the window and session stores (Kafka's
//! `AbstractRocksDBSegmentedBytesStore` with `KeyValueSegments`, `WindowKeySchema`
//! and `SessionKeySchema`).
//!
//! # Keys
//! The stores keep the binary keys Kafka keeps, which are also their changelog keys:
//! - window stores ([`KeySchema::Window`], Kafka's `WindowKeySchema.toStoreKeyBinary`):
//!   `key bytes ‖ window start (8 bytes, big-endian) ‖ sequence number (4 bytes)`. The
//!   sequence number tells apart duplicates of Kafka's `retainDuplicates` stores (used
//!   by stream-stream joins), each put of which takes the next one; in other stores it
//!   is always 0, and a put replaces the value of its key and window.
//! - session stores ([`KeySchema::Session`], `SessionKeySchema.toBinary`):
//!   `key bytes ‖ session end (8) ‖ session start (8)`.
//!
//! Timestamps must not be negative (window starts and session bounds never are in
//! Kafka Streams): big-endian `i64`s only sort numerically when non-negative.
//!
//! # Segments
//! A record belongs to segment `timestamp / segment_interval`, by its window start
//! (window stores) or session end (session stores). The store observes stream time as
//! the largest such timestamp put or restored; a segment whose timestamps all lie more
//! than `retention` before it is expired and is dropped whole on the next write, and
//! records for expired segments are not written. Reads never return records older than
//! `observed stream time - retention + 1` (Kafka's `getActualFrom`), whether or not
//! their segment is gone yet.
//!
//! # Layout
//! Segments are key ranges of one key-value backend: each stored key is prefixed with
//! its segment id (8 bytes, big-endian), so a segment is a contiguous range, reads
//! within it are ordinary range scans, and iteration goes segment by segment, then by
//! binary key, as Kafka's `SegmentIterator` does. On RocksDB, a dropped segment is one
//! range deletion.
//!
//! Why not a column family (or, as Kafka, a RocksDB instance) per segment: with key
//! ranges of one database, a write, the segments it expires and the changelog
//! checkpoint go into one `WriteBatch` of one write-ahead log, so the checkpoint stays
//! exactly as crash-consistent as the key-value store's (never ahead of the data), and
//! the store opens and recovers (wiping unusable state) through the same code as the
//! key-value store. Column families would each have their own memtable (memory growing
//! with the number of segments, outside the shared write-buffer budget's intent) and a
//! create/drop lifecycle outside the write batch to recover on opening. What range
//! deletions cost instead: the space of a dropped segment is reclaimed by compaction
//! rather than at once.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use rocksdb::WriteBatch;

use super::error::{StateError, StateResult};
use super::key_value::{KeyValue, KeyValueIter, ReadOnlyKeyValueStore};
use super::restorable::{ChangelogPartition, RestoreRecord};
use super::rocks::RocksDbStore;

/// Bytes of a timestamp in a binary key.
pub(crate) const TIMESTAMP_SIZE: usize = 8;
/// Bytes of the sequence number at the end of a window store's binary key.
pub(crate) const SEQNUM_SIZE: usize = 4;
/// Bytes of the segment id prefixed to every stored key.
const SEGMENT_PREFIX_SIZE: usize = 8;

/// Kafka's `ConsumerRecord.NO_TIMESTAMP`: the observed stream time of a store that has
/// seen no record.
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// Kafka's default segment interval for a retention period:
/// `max(retention / 2, 60 s)` (`Stores.persistentWindowStore`,
/// `RocksDbSessionBytesStoreSupplier.segmentIntervalMs`).
pub fn default_segment_interval_ms(retention_ms: i64) -> i64 {
    (retention_ms / 2).max(60_000)
}

/// How binary keys are laid out, and which of their timestamps places them in a
/// segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySchema {
    /// `key ‖ start ‖ seqnum`, segmented by window start.
    Window,
    /// `key ‖ end ‖ start`, segmented by session end.
    Session,
}

impl KeySchema {
    fn suffix_size(self) -> usize {
        match self {
            KeySchema::Window => TIMESTAMP_SIZE + SEQNUM_SIZE,
            KeySchema::Session => 2 * TIMESTAMP_SIZE,
        }
    }

    /// The record key in `binary`, or `None` if `binary` is too short to be one.
    pub(crate) fn key_of(self, binary: &[u8]) -> Option<&[u8]> {
        binary.get(..binary.len().checked_sub(self.suffix_size())?)
    }

    /// The timestamp that places `binary` in a segment: window start or session end.
    pub(crate) fn segment_timestamp(self, binary: &[u8]) -> Option<i64> {
        let at = binary.len().checked_sub(self.suffix_size())?;
        read_i64(binary, at)
    }

    /// `(start, end)` of a session key.
    pub(crate) fn session_bounds(binary: &[u8]) -> Option<(i64, i64)> {
        let at = binary.len().checked_sub(2 * TIMESTAMP_SIZE)?;
        let end = read_i64(binary, at)?;
        let start = read_i64(binary, at + TIMESTAMP_SIZE)?;
        Some((start, end))
    }
}

fn read_i64(bytes: &[u8], at: usize) -> Option<i64> {
    let raw: [u8; 8] = bytes.get(at..at + TIMESTAMP_SIZE)?.try_into().ok()?;
    Some(i64::from_be_bytes(raw))
}

/// Kafka's `WindowKeySchema.toStoreKeyBinary(key, window_start, seqnum)`.
pub(crate) fn window_key(key: &[u8], window_start: i64, seqnum: u32) -> Vec<u8> {
    let mut binary = Vec::with_capacity(key.len() + TIMESTAMP_SIZE + SEQNUM_SIZE);
    binary.extend_from_slice(key);
    binary.extend_from_slice(&window_start.to_be_bytes());
    binary.extend_from_slice(&seqnum.to_be_bytes());
    binary
}

/// Kafka's `SessionKeySchema.toBinary(key, start, end)`: key, then end, then start.
pub(crate) fn session_key(key: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut binary = Vec::with_capacity(key.len() + 2 * TIMESTAMP_SIZE);
    binary.extend_from_slice(key);
    binary.extend_from_slice(&end.to_be_bytes());
    binary.extend_from_slice(&start.to_be_bytes());
    binary
}

fn segment_prefix(segment: i64) -> [u8; SEGMENT_PREFIX_SIZE] {
    segment.to_be_bytes()
}

fn prefixed(segment: i64, binary: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(SEGMENT_PREFIX_SIZE + binary.len());
    key.extend_from_slice(&segment_prefix(segment));
    key.extend_from_slice(binary);
    key
}

/// The segment id of a stored key.
fn segment_of(stored: &[u8]) -> Option<i64> {
    read_i64(stored, 0)
}

/// Which binary keys a scan yields, shared by the scans of its segments.
type KeyFilter<'a> = std::sync::Arc<dyn Fn(&[u8]) -> bool + 'a>;

/// One write to the backend.
enum WriteOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// Deletes the keys in `[from, to)`.
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// Where the segments live.
pub(crate) enum Backend {
    /// A RocksDB key-value store, whose opening, recovery and checkpoint metadata
    /// the segmented store reuses.
    RocksDb(Box<RocksDbStore>),
    /// A sorted map; its data dies with the process, so it never trusts a
    /// checkpoint of an earlier run.
    Memory {
        name: String,
        map: BTreeMap<Vec<u8>, Vec<u8>>,
        checkpoint: Option<i64>,
        changelog: Option<ChangelogPartition>,
        open: bool,
    },
}

impl Backend {
    fn name(&self) -> &str {
        match self {
            Backend::RocksDb(store) => store.name(),
            Backend::Memory { name, .. } => name,
        }
    }

    fn check_open(&self) -> StateResult<()> {
        match self {
            Backend::Memory {
                open: false, name, ..
            } => Err(StateError::NotOpen {
                store: name.clone(),
                state: "closed",
            }),
            _ => Ok(()),
        }
    }

    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        match self {
            Backend::RocksDb(store) => store.get(key),
            Backend::Memory { map, .. } => {
                self.check_open()?;
                Ok(map.get(key).cloned())
            }
        }
    }

    /// Entries with keys in `[lower, upper)` (`None`: unbounded), in `forward` order.
    fn scan(
        &self,
        lower: &[u8],
        upper: Option<&[u8]>,
        forward: bool,
    ) -> StateResult<KeyValueIter<'_>> {
        match self {
            Backend::RocksDb(store) => store.scan(lower, upper, forward),
            Backend::Memory { map, .. } => {
                self.check_open()?;
                if upper.is_some_and(|upper| upper <= lower) {
                    return Ok(Box::new(std::iter::empty()));
                }
                let upper = upper.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
                let range = map
                    .range::<[u8], _>((std::ops::Bound::Included(lower), upper))
                    .map(|(k, v)| Ok((k.clone(), v.clone())));
                if forward {
                    Ok(Box::new(range))
                } else {
                    Ok(Box::new(range.rev()))
                }
            }
        }
    }

    /// Applies `ops` atomically, with the checkpoint `next_offset` if given.
    fn write(
        &mut self,
        ops: Vec<WriteOp>,
        next_offset: Option<i64>,
        operation: &'static str,
    ) -> StateResult<()> {
        match self {
            Backend::RocksDb(store) => {
                let mut batch = WriteBatch::default();
                for op in &ops {
                    match op {
                        WriteOp::Put(key, value) => batch.put(key, value),
                        WriteOp::Delete(key) => batch.delete(key),
                        WriteOp::DeleteRange(from, to) => batch.delete_range(from, to),
                    }
                }
                store.write_batch(batch, next_offset, operation)
            }
            Backend::Memory {
                map,
                checkpoint,
                open,
                name,
                ..
            } => {
                if !*open {
                    return Err(StateError::NotOpen {
                        store: name.clone(),
                        state: "closed",
                    });
                }
                for op in ops {
                    match op {
                        WriteOp::Put(key, value) => {
                            map.insert(key, value);
                        }
                        WriteOp::Delete(key) => {
                            map.remove(&key);
                        }
                        WriteOp::DeleteRange(from, to) => {
                            let mut tail = map.split_off(&from);
                            let mut rest = tail.split_off(&to);
                            map.append(&mut rest);
                        }
                    }
                }
                if next_offset.is_some() {
                    *checkpoint = next_offset;
                }
                Ok(())
            }
        }
    }
}

/// A write of a batch to a segment live when it was seen: segment, stored key, value.
type LiveWrite<'e> = (i64, Vec<u8>, Option<&'e [u8]>);

/// A segmented byte store: the common part of the window and session stores.
pub(crate) struct SegmentedBytesStore {
    schema: KeySchema,
    retention_ms: i64,
    segment_interval_ms: i64,
    /// The largest segment timestamp put or restored (Kafka's `observedStreamTime`).
    observed_stream_time: i64,
    /// Ids of the segments that may hold data, ascending.
    segments: BTreeSet<i64>,
    /// Records not written because their segment had expired (Kafka's
    /// expired-record sensor, part of `dropped-records`).
    expired_records: u64,
    /// Whether reads reach back to stream time minus retention (Kafka's time-ordered
    /// stores) rather than one millisecond less far.
    time_ordered_reads: bool,
    backend: Backend,
}

impl std::fmt::Debug for SegmentedBytesStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentedBytesStore")
            .field("name", &self.backend.name())
            .field("schema", &self.schema)
            .field("retention_ms", &self.retention_ms)
            .field("segment_interval_ms", &self.segment_interval_ms)
            .field("observed_stream_time", &self.observed_stream_time)
            .field("segments", &self.segments.len())
            .finish()
    }
}

/// Checks retention and segment interval as Kafka's `Stores` does.
pub(crate) fn validate_segmentation(
    store: &str,
    retention_ms: i64,
    segment_interval_ms: i64,
) -> StateResult<()> {
    if retention_ms < 0 {
        return Err(StateError::Config {
            store: store.to_owned(),
            reason: format!("retention period cannot be negative (got {retention_ms} ms)"),
        });
    }
    if segment_interval_ms < 1 {
        return Err(StateError::Config {
            store: store.to_owned(),
            reason: format!(
                "segment interval cannot be zero or negative (got {segment_interval_ms} ms)"
            ),
        });
    }
    Ok(())
}

impl SegmentedBytesStore {
    /// A store over `backend`; for RocksDB, finds the segments its data is in and
    /// starts observed stream time at the start of the newest one (a lower bound of
    /// the largest timestamp it holds; Kafka starts from no timestamp).
    pub(crate) fn new(
        schema: KeySchema,
        retention_ms: i64,
        segment_interval_ms: i64,
        backend: Backend,
    ) -> StateResult<Self> {
        validate_segmentation(backend.name(), retention_ms, segment_interval_ms)?;
        let mut store = SegmentedBytesStore {
            schema,
            retention_ms,
            segment_interval_ms,
            observed_stream_time: NO_TIMESTAMP,
            segments: BTreeSet::new(),
            expired_records: 0,
            time_ordered_reads: false,
            backend,
        };
        store.segments = store.scan_segment_ids()?;
        if let Some(newest) = store.segments.last() {
            store.observed_stream_time = newest.saturating_mul(segment_interval_ms);
        }
        Ok(store)
    }

    /// The segment ids present in the backend: one seek per segment.
    fn scan_segment_ids(&self) -> StateResult<BTreeSet<i64>> {
        let mut ids = BTreeSet::new();
        let mut lower = segment_prefix(0).to_vec();
        loop {
            let first = self.backend.scan(&lower, None, true)?.next().transpose()?;
            let Some((key, _)) = first else {
                break;
            };
            let Some(id) = segment_of(&key) else {
                break;
            };
            ids.insert(id);
            match id.checked_add(1) {
                Some(next) => lower = segment_prefix(next).to_vec(),
                None => break,
            }
        }
        Ok(ids)
    }

    pub(crate) fn name(&self) -> &str {
        self.backend.name()
    }

    pub(crate) fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    /// Number of live segments (those that may hold data).
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Number of segments that hold data, read from the backend (not from the
    /// bookkeeping [`Self::segment_count`] reports).
    #[cfg(test)]
    pub(crate) fn stored_segment_count(&self) -> StateResult<usize> {
        Ok(self.scan_segment_ids()?.len())
    }

    pub(crate) fn observed_stream_time(&self) -> i64 {
        self.observed_stream_time
    }

    pub(crate) fn expired_records(&self) -> u64 {
        self.expired_records
    }

    fn segment_id(&self, timestamp: i64) -> i64 {
        timestamp / self.segment_interval_ms
    }

    /// The oldest live segment at stream time `stream_time`.
    fn min_live_segment(&self, stream_time: i64) -> i64 {
        self.segment_id(stream_time.saturating_sub(self.retention_ms))
    }

    /// The oldest timestamp reads may return (Kafka's `getActualFrom`).
    fn actual_from(&self, from: i64) -> i64 {
        let horizon = self.observed_stream_time.saturating_sub(self.retention_ms);
        let horizon = if self.time_ordered_reads {
            horizon
        } else {
            horizon.saturating_add(1)
        };
        from.max(horizon).max(0)
    }

    /// Reads back to stream time minus retention (Kafka's time-ordered stores'
    /// `getActualFrom`), one millisecond further than by default.
    pub(crate) fn set_time_ordered_reads(&mut self) {
        self.time_ordered_reads = true;
    }

    fn invalid_key(&self, binary: &[u8]) -> StateError {
        StateError::Config {
            store: self.name().to_owned(),
            reason: format!(
                "binary {:?} key of {} bytes is shorter than its {}-byte suffix",
                self.schema,
                binary.len(),
                self.schema.suffix_size()
            ),
        }
    }

    fn negative_timestamp(&self, timestamp: i64) -> StateError {
        StateError::Config {
            store: self.name().to_owned(),
            reason: format!(
                "timestamp {timestamp} is negative: window and session stores hold only non-negative window bounds"
            ),
        }
    }

    /// Range deletions of every segment older than `min_live` (removed from
    /// `segments` by [`Self::forget_segments_before`] once written).
    fn expiry_ops(&self, min_live: i64) -> Vec<WriteOp> {
        self.segments
            .range(..min_live)
            .map(|&id| {
                WriteOp::DeleteRange(
                    segment_prefix(id).to_vec(),
                    segment_prefix(id.saturating_add(1)).to_vec(),
                )
            })
            .collect()
    }

    fn forget_segments_before(&mut self, min_live: i64) {
        self.segments = self.segments.split_off(&min_live);
    }

    /// Writes (or, with `None`, deletes) the record of `binary`, unless its segment
    /// has expired; drops the segments its timestamp expires.
    pub(crate) fn put(&mut self, binary: &[u8], value: Option<&[u8]>) -> StateResult<()> {
        self.put_all(std::iter::once((binary, value)))
    }

    /// Writes (or deletes) several records, in order, in one write: as many
    /// [`put`](Self::put)s, except that a record whose segment a later record of the
    /// batch expires is not written at all (the `put`s would write it, then drop its
    /// segment).
    pub(crate) fn put_all<'e>(
        &mut self,
        entries: impl IntoIterator<Item = (&'e [u8], Option<&'e [u8]>)>,
    ) -> StateResult<()> {
        // (segment, stored key, value) of each write to a live segment.
        let mut writes: Vec<LiveWrite<'e>> = Vec::new();
        for (binary, value) in entries {
            let timestamp = self
                .schema
                .segment_timestamp(binary)
                .ok_or_else(|| self.invalid_key(binary))?;
            if timestamp < 0 {
                return Err(self.negative_timestamp(timestamp));
            }
            self.observed_stream_time = self.observed_stream_time.max(timestamp);
            let segment = self.segment_id(timestamp);
            if segment >= self.min_live_segment(self.observed_stream_time) {
                writes.push((segment, prefixed(segment, binary), value));
            } else {
                self.expired_records += 1;
                tracing::debug!(
                    store = %self.name(),
                    timestamp,
                    observed_stream_time = self.observed_stream_time,
                    retention_ms = self.retention_ms,
                    "skipping record for expired segment"
                );
            }
        }
        let min_live = self.min_live_segment(self.observed_stream_time);
        let mut ops = self.expiry_ops(min_live);
        let mut written_segments = Vec::new();
        for (segment, key, value) in writes {
            if segment < min_live {
                continue;
            }
            ops.push(match value {
                Some(value) => {
                    written_segments.push(segment);
                    WriteOp::Put(key, value.to_vec())
                }
                None => WriteOp::Delete(key),
            });
        }
        if ops.is_empty() {
            return Ok(());
        }
        self.backend.write(ops, None, "writing")?;
        self.forget_segments_before(min_live);
        self.segments.extend(written_segments);
        Ok(())
    }

    /// The value of `binary`, unless it has expired.
    pub(crate) fn get(&self, binary: &[u8]) -> StateResult<Option<Vec<u8>>> {
        let timestamp = self
            .schema
            .segment_timestamp(binary)
            .ok_or_else(|| self.invalid_key(binary))?;
        if timestamp < self.actual_from(0) {
            return Ok(None);
        }
        let segment = self.segment_id(timestamp);
        if !self.segments.contains(&segment) {
            return Ok(None);
        }
        self.backend.get(&prefixed(segment, binary))
    }

    /// The entries of the segments `from_segment..=to_segment` whose stored keys lie,
    /// within each segment, in `[lower, upper]` (binary keys without the prefix;
    /// `None`: the whole segment), in `forward` order, that `keep` accepts. Yields
    /// binary keys without the segment prefix.
    pub(crate) fn scan<'a>(
        &'a self,
        from_segment: i64,
        to_segment: i64,
        bounds: Option<(Vec<u8>, Vec<u8>)>,
        forward: bool,
        keep: impl Fn(&[u8]) -> bool + 'a,
    ) -> KeyValueIter<'a> {
        if from_segment > to_segment {
            return Box::new(std::iter::empty());
        }
        let segments: Vec<i64> = if forward {
            self.segments
                .range(from_segment..=to_segment)
                .copied()
                .collect()
        } else {
            self.segments
                .range(from_segment..=to_segment)
                .rev()
                .copied()
                .collect()
        };
        let keep: KeyFilter<'a> = std::sync::Arc::new(keep);
        Box::new(segments.into_iter().flat_map(move |segment| {
            let (lower, upper) = match &bounds {
                Some((lower, upper)) => {
                    let mut upper = prefixed(segment, upper);
                    // Inclusive upper bound: its successor is the exclusive one.
                    upper.push(0);
                    (prefixed(segment, lower), upper)
                }
                None => (
                    segment_prefix(segment).to_vec(),
                    segment_prefix(segment.saturating_add(1)).to_vec(),
                ),
            };
            let keep = keep.clone();
            let entries: KeyValueIter<'a> =
                match self.backend.scan(&lower, Some(upper.as_slice()), forward) {
                    Ok(iter) => Box::new(iter.filter_map(move |item| match item {
                        Ok((stored, value)) => {
                            let binary = stored.get(SEGMENT_PREFIX_SIZE..)?.to_vec();
                            (*keep)(&binary).then_some(Ok::<KeyValue, StateError>((binary, value)))
                        }
                        Err(err) => Some(Err(err)),
                    })),
                    Err(err) => Box::new(std::iter::once(Err(err))),
                };
            entries
        }))
    }

    /// Segment ids to read for records with segment timestamps in `[from, to]`.
    pub(crate) fn segment_range(&self, from: i64, to: i64) -> (i64, i64) {
        (self.segment_id(from.max(0)), self.segment_id(to.max(0)))
    }

    /// [`Self::actual_from`], for the stores' reads.
    pub(crate) fn read_from(&self, from: i64) -> i64 {
        self.actual_from(from)
    }

    pub(crate) fn flush(&mut self) -> StateResult<()> {
        if let Backend::RocksDb(store) = &mut self.backend {
            return super::KeyValueStore::flush(store.as_mut());
        }
        self.backend.check_open()
    }

    pub(crate) fn close(&mut self) -> StateResult<()> {
        match &mut self.backend {
            Backend::RocksDb(store) => super::KeyValueStore::close(store.as_mut()),
            Backend::Memory { open, map, .. } => {
                *open = false;
                map.clear();
                Ok(())
            }
        }?;
        self.segments.clear();
        Ok(())
    }

    pub(crate) fn persistent(&self) -> bool {
        matches!(self.backend, Backend::RocksDb(_))
    }

    pub(crate) fn changelog(&self) -> Option<&ChangelogPartition> {
        match &self.backend {
            Backend::RocksDb(store) => super::RestorableStore::changelog(store.as_ref()),
            Backend::Memory { changelog, .. } => changelog.as_ref(),
        }
    }

    pub(crate) fn checkpointed_offset(&self) -> Option<i64> {
        match &self.backend {
            Backend::RocksDb(store) => super::RestorableStore::checkpointed_offset(store.as_ref()),
            Backend::Memory { checkpoint, .. } => *checkpoint,
        }
    }

    pub(crate) fn checkpoint(&mut self, next_offset: i64) -> StateResult<()> {
        if let Backend::RocksDb(store) = &mut self.backend {
            return super::RestorableStore::checkpoint(store.as_mut(), next_offset);
        }
        self.backend
            .write(Vec::new(), Some(next_offset), "checkpointing")
    }

    pub(crate) fn remove_checkpoint(&mut self) -> StateResult<()> {
        match &mut self.backend {
            Backend::RocksDb(store) => super::RestorableStore::remove_checkpoint(store.as_mut()),
            Backend::Memory { checkpoint, .. } => {
                *checkpoint = None;
                Ok(())
            }
        }
    }

    fn restore_error(&self, offset: i64, reason: String) -> StateError {
        let (topic, partition) = match self.changelog() {
            Some(changelog) => (changelog.topic.clone(), changelog.partition),
            None => (String::new(), -1),
        };
        StateError::Restore {
            store: self.name().to_owned(),
            topic,
            partition,
            offset,
            reason,
        }
    }

    /// Applies changelog records (whose keys are the binary keys), skipping those
    /// below the checkpoint and those of expired segments, and writes them, the
    /// segments they expire and the checkpoint in one batch (Kafka's
    /// `restoreAllInternal`: stream time first advances to the batch's largest
    /// timestamp).
    pub(crate) fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
        let from = self.checkpointed_offset().unwrap_or(i64::MIN);
        let mut last: Option<i64> = None;
        let mut parsed: Vec<(&RestoreRecord<'_>, i64)> = Vec::with_capacity(records.len());
        let mut stream_time = self.observed_stream_time;
        for record in records.iter().filter(|r| r.offset >= from) {
            if let Some(prev) = last {
                if record.offset <= prev {
                    return Err(self.restore_error(
                        record.offset,
                        format!("offsets must increase within a batch (after {prev})"),
                    ));
                }
            }
            last = Some(record.offset);
            let timestamp = self.schema.segment_timestamp(record.key).ok_or_else(|| {
                self.restore_error(
                    record.offset,
                    format!(
                        "changelog key of {} bytes is shorter than a binary {:?} key's {}-byte suffix",
                        record.key.len(),
                        self.schema,
                        self.schema.suffix_size()
                    ),
                )
            })?;
            if timestamp < 0 {
                return Err(self.restore_error(
                    record.offset,
                    format!("negative timestamp {timestamp} in the changelog key"),
                ));
            }
            stream_time = stream_time.max(timestamp);
            parsed.push((record, timestamp));
        }
        let Some(last) = last else {
            return Ok(());
        };
        let min_live = self.min_live_segment(stream_time);
        let mut ops = self.expiry_ops(min_live);
        let mut written = BTreeSet::new();
        for (record, timestamp) in parsed {
            let segment = self.segment_id(timestamp);
            if segment < min_live {
                continue;
            }
            let key = prefixed(segment, record.key);
            ops.push(match record.value {
                Some(value) => {
                    written.insert(segment);
                    WriteOp::Put(key, value.to_vec())
                }
                None => WriteOp::Delete(key),
            });
        }
        self.backend
            .write(ops, Some(last.saturating_add(1)), "writing a restore batch")?;
        self.observed_stream_time = stream_time;
        self.forget_segments_before(min_live);
        self.segments.extend(written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_backend() -> Backend {
        Backend::Memory {
            name: "w".into(),
            map: BTreeMap::new(),
            checkpoint: None,
            changelog: None,
            open: true,
        }
    }

    #[test]
    fn binary_keys_are_kafkas() {
        let window = window_key(b"k", 0x0102, 0);
        assert_eq!(
            window,
            [b"k".as_slice(), &[0, 0, 0, 0, 0, 0, 1, 2], &[0, 0, 0, 0]].concat()
        );
        assert_eq!(KeySchema::Window.key_of(&window), Some(b"k".as_slice()));
        assert_eq!(KeySchema::Window.segment_timestamp(&window), Some(0x0102));
        let session = session_key(b"k", 5, 9);
        assert_eq!(
            session,
            [b"k".as_slice(), &9i64.to_be_bytes(), &5i64.to_be_bytes()].concat()
        );
        assert_eq!(KeySchema::Session.segment_timestamp(&session), Some(9));
        assert_eq!(KeySchema::session_bounds(&session), Some((5, 9)));
        assert_eq!(KeySchema::Session.key_of(&session), Some(b"k".as_slice()));
        assert_eq!(KeySchema::Window.key_of(b"short"), None);
        assert_eq!(KeySchema::Session.segment_timestamp(b"short"), None);
    }

    #[test]
    fn default_segment_interval_is_half_the_retention_but_at_least_a_minute() {
        assert_eq!(default_segment_interval_ms(10_000), 60_000);
        assert_eq!(default_segment_interval_ms(3_600_000), 1_800_000);
    }

    #[test]
    fn expired_segments_are_dropped_and_expired_records_skipped() {
        let mut store =
            SegmentedBytesStore::new(KeySchema::Window, 1_000, 500, memory_backend()).unwrap();
        for start in [0, 400, 600, 1_100] {
            store.put(&window_key(b"k", start, 0), Some(b"v")).unwrap();
        }
        // Stream time 1100, retention 1000: segments >= (100 / 500) = 0 live.
        assert_eq!(store.segment_count(), 3);
        store.put(&window_key(b"k", 1_600, 0), Some(b"v")).unwrap();
        // min live segment = 600 / 500 = 1: segment 0 goes.
        assert_eq!(store.segment_count(), 3);
        assert_eq!(store.get(&window_key(b"k", 400, 0)).unwrap(), None);
        // A record for segment 0 now is expired and not written.
        store.put(&window_key(b"k", 100, 0), Some(b"late")).unwrap();
        assert_eq!(store.expired_records(), 1);
        assert_eq!(store.segment_count(), 3);
        match &store.backend {
            Backend::Memory { map, .. } => {
                assert!(map.keys().all(|k| segment_of(k) != Some(0)), "{map:?}");
            }
            Backend::RocksDb(_) => unreachable!(),
        }
        // Reads hide what is older than stream time - retention + 1 = 601, even in a
        // live segment.
        assert_eq!(store.get(&window_key(b"k", 600, 0)).unwrap(), None);
        assert_eq!(
            store.get(&window_key(b"k", 1_100, 0)).unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn bad_keys_and_negative_timestamps_are_errors() {
        let mut store =
            SegmentedBytesStore::new(KeySchema::Session, 1_000, 500, memory_backend()).unwrap();
        let err = store.put(b"tiny", Some(b"v")).unwrap_err();
        assert!(err.to_string().contains("store w"), "{err}");
        let err = store
            .put(&session_key(b"k", -5, -1), Some(b"v"))
            .unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
        let err = store
            .restore_batch(&[RestoreRecord {
                key: b"tiny",
                value: None,
                offset: 7,
            }])
            .unwrap_err();
        assert!(
            matches!(err, StateError::Restore { offset: 7, .. }),
            "{err}"
        );
        assert!(SegmentedBytesStore::new(KeySchema::Window, -1, 500, memory_backend()).is_err());
        assert!(SegmentedBytesStore::new(KeySchema::Window, 1, 0, memory_backend()).is_err());
    }
}
