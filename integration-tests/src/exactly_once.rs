//! Checking a word count's output against its input under exactly-once: every
//! record a `read_committed` consumer sees, and how it differs from the reference
//! (each word's counts `1, 2, ..., n`, in order, each once). Used by the crash and
//! exactly-once tests (`tests/streams_crash.rs`, `tests/streams_eos.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer};
use kafka_client::rdkafka::message::Message as _;
use kafka_client::rdkafka::Offset;

use crate::{assign_from_beginning, config, unique_name, DEADLINE};

/// Every record of `topic` a `read_committed` consumer sees, per partition in offset
/// order: `(word, count)`.
pub fn read_committed_counts(topic: &str) -> Vec<(String, i64)> {
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
                let word = String::from_utf8(m.key().expect("key").to_vec()).expect("utf8");
                let count: [u8; 8] = m.payload().expect("count").try_into().expect("i64");
                records.push((word, i64::from_be_bytes(count)));
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
    let deadline = Instant::now() + deadline;
    loop {
        let out = read_committed_counts(topic);
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for (w, c) in &out {
            latest.insert(w.as_str(), *c);
        }
        let complete = expected
            .iter()
            .filter(|(w, n)| latest.get(w.as_str()).is_some_and(|c| c >= *n))
            .count();
        if complete == expected.len() {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {complete} of {} words reached their counts",
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The latest count per word of a word count's output, in the order read.
pub fn latest_counts(output: &[(String, i64)]) -> BTreeMap<String, i64> {
    output.iter().cloned().collect()
}

/// What the output holds against the reference.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Output records whose `(word, count)` appeared before.
    pub repeated: usize,
    /// Counts of `1..=n` that never appear.
    pub lost: usize,
    /// Distinct counts above a word's `n`.
    pub overcounts: usize,
    /// Words whose counts are not exactly `1, 2, ..., n` in order.
    pub words_off: usize,
}

pub fn judge(expected: &BTreeMap<String, i64>, output: &[(String, i64)]) -> Verdict {
    let mut per_word: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (word, count) in output {
        per_word.entry(word.as_str()).or_default().push(*count);
    }
    let mut verdict = Verdict::default();
    for (word, &n) in expected {
        let counts = per_word.remove(word.as_str()).unwrap_or_default();
        let mut seen = BTreeSet::new();
        for &c in &counts {
            if !seen.insert(c) {
                verdict.repeated += 1;
            }
        }
        verdict.lost += (1..=n).filter(|c| !seen.contains(c)).count();
        verdict.overcounts += seen.iter().filter(|&&c| c > n || c < 1).count();
        if counts != (1..=n).collect::<Vec<_>>() {
            verdict.words_off += 1;
        }
    }
    // Words that were never produced.
    for counts in per_word.values() {
        verdict.overcounts += counts.len();
        verdict.words_off += 1;
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
                words_off: 3
            }
        );
    }
}
