//! Checking a count's output against its input under exactly-once: every record a
//! `read_committed` consumer sees, and how it differs from the reference (each
//! key's counts `1, 2, ..., n`, in order, each once). The key is a word (a word
//! count) or a (key, window start) pair (a windowed count). Used by the crash and
//! exactly-once tests (`tests/streams_crash.rs`, `tests/streams_eos.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer};
use kafka_client::rdkafka::message::Message as _;
use kafka_client::rdkafka::Offset;

use crate::{assign_from_beginning, config, unique_name, DEADLINE};

/// A word count's output key: the UTF-8 word.
pub fn word_key(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf8 word")
}

/// Every record of `topic` a `read_committed` consumer sees, per partition in offset
/// order: `(word, count)`.
pub fn read_committed_counts(topic: &str) -> Vec<(String, i64)> {
    read_committed_counts_by(topic, word_key)
}

/// Every record of `topic` a `read_committed` consumer sees, per partition in offset
/// order: `(key, count)`, the key decoded by `decode_key`.
pub fn read_committed_counts_by<K>(topic: &str, decode_key: fn(&[u8]) -> K) -> Vec<(K, i64)> {
    read_committed_records(topic)
        .into_iter()
        .map(|r| {
            let count: [u8; 8] = r.value.try_into().expect("i64");
            (decode_key(&r.key), i64::from_be_bytes(count))
        })
        .collect()
}

/// A record a `read_committed` consumer saw.
#[derive(Debug, Clone)]
pub struct CommittedRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
}

/// Every record of `topic` a `read_committed` consumer sees, per partition in offset
/// order (keys and values required).
pub fn read_committed_records(topic: &str) -> Vec<CommittedRecord> {
    let consumer: BaseConsumer = config()
        .group_id(unique_name("crash-reader"))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .to_rdkafka()
        .create()
        .expect("consumer");
    // Under read_committed the end is the last stable offset.
    let ends = assign_from_beginning(&consumer, topic);
    let mut records = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m.expect("output record");
                records.push(CommittedRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().expect("key").to_vec(),
                    value: m.payload().expect("value").to_vec(),
                });
            }
            None => {
                // Transaction markers hold no record: the position tells the end.
                let positions = consumer.position().expect("positions");
                let done = ends.iter().all(|(p, end)| {
                    *end == 0
                        || matches!(
                            positions.find_partition(topic, *p).map(|e| e.offset()),
                            Some(Offset::Offset(at)) if at >= *end
                        )
                });
                if done {
                    records.sort_by_key(|r| (r.partition, r.offset));
                    return records;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out reading {topic} to {ends:?}"
                );
            }
        }
    }
}

/// Reads `topic` (a word count's output) with `read_committed` until every word of
/// `expected` has reached its count there (at-least-once may overshoot), and returns
/// everything read. Fails after `deadline`.
pub fn wait_for_counts(
    topic: &str,
    expected: &BTreeMap<String, i64>,
    deadline: Duration,
) -> Vec<(String, i64)> {
    wait_for_counts_by(topic, expected, deadline, word_key)
}

/// [`wait_for_counts`] for any count's output, its keys decoded by `decode_key`.
pub fn wait_for_counts_by<K: Ord + Debug>(
    topic: &str,
    expected: &BTreeMap<K, i64>,
    deadline: Duration,
    decode_key: fn(&[u8]) -> K,
) -> Vec<(K, i64)> {
    let deadline = Instant::now() + deadline;
    loop {
        let out = read_committed_counts_by(topic, decode_key);
        let mut latest: BTreeMap<&K, i64> = BTreeMap::new();
        for (k, c) in &out {
            latest.insert(k, *c);
        }
        let complete = expected
            .iter()
            .filter(|(k, n)| latest.get(k).is_some_and(|c| c >= *n))
            .count();
        if complete == expected.len() {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {complete} of {} keys reached their counts",
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The latest count per key of a count's output, in the order read.
pub fn latest_counts<K: Ord + Clone>(output: &[(K, i64)]) -> BTreeMap<K, i64> {
    output.iter().cloned().collect()
}

/// What the output holds against the reference.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Output records whose `(key, count)` appeared before.
    pub repeated: usize,
    /// Counts of `1..=n` that never appear.
    pub lost: usize,
    /// Distinct counts above a key's `n` (or below 1), and records of keys not in
    /// the input.
    pub overcounts: usize,
    /// Keys whose counts are not exactly `1, 2, ..., n` in order.
    pub keys_off: usize,
}

/// How `output` (`(key, count)` in the order read) differs from the reference: each
/// key of `expected` with the counts `1, 2, ..., n`, in order, each once.
pub fn judge<K: Ord>(expected: &BTreeMap<K, i64>, output: &[(K, i64)]) -> Verdict {
    let mut per_key: BTreeMap<&K, Vec<i64>> = BTreeMap::new();
    for (key, count) in output {
        per_key.entry(key).or_default().push(*count);
    }
    let mut verdict = Verdict::default();
    for (key, &n) in expected {
        let counts = per_key.remove(key).unwrap_or_default();
        let mut seen = BTreeSet::new();
        for &c in &counts {
            if !seen.insert(c) {
                verdict.repeated += 1;
            }
        }
        verdict.lost += (1..=n).filter(|c| !seen.contains(c)).count();
        verdict.overcounts += seen.iter().filter(|&&c| c > n || c < 1).count();
        if counts != (1..=n).collect::<Vec<_>>() {
            verdict.keys_off += 1;
        }
    }
    // Keys that were never produced.
    for counts in per_key.values() {
        verdict.overcounts += counts.len();
        verdict.keys_off += 1;
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_counts_duplicates_losses_and_overcounts() {
        let expected: BTreeMap<String, i64> = [("a".to_owned(), 3), ("b".to_owned(), 1)].into();
        let exact = [("a", 1), ("b", 1), ("a", 2), ("a", 3)];
        let exact: Vec<(String, i64)> = exact.iter().map(|(w, c)| (w.to_string(), *c)).collect();
        assert_eq!(judge(&expected, &exact), Verdict::default());
        let replayed = [("a", 1), ("a", 2), ("a", 2), ("a", 3), ("a", 4), ("c", 1)];
        let replayed: Vec<(String, i64)> =
            replayed.iter().map(|(w, c)| (w.to_string(), *c)).collect();
        assert_eq!(
            judge(&expected, &replayed),
            Verdict {
                repeated: 1,
                lost: 1,
                overcounts: 2,
                keys_off: 3
            }
        );
    }
}
