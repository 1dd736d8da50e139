//! Interactive queries of window and session stores against the broker named by
//! `KAFKA_BOOTSTRAP_SERVERS` (Kafka's `QueryableStoreTypes.windowStore()` and
//! `sessionStore()`): a windowed count's and a session count's stores, queried through
//! `KafkaStreams::window_store` and `KafkaStreams::session_store`, answer exactly the
//! output topics' latest value per windowed key; `query_metadata_for_key` locates a
//! windowed store's key by the plain key; while the stores restore from their
//! changelogs, queries fail as "migrating", then answer the restored windows.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

use integration_tests::{
    an_hour_ago_ms, block_on, config, create_topic, read_to_end, unique_name, wait_until, DEADLINE,
};
use kafka_client::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use kafka_client::serde::{BigEndian, OptionSerde, StringSerde};
use kafka_streams::dsl::{
    Consumed, Materialized, Produced, SessionWindows, StreamsBuilder, TimeWindows, Window,
};
use kafka_streams::runtime::{HostInfo, KafkaStreams, State, StreamsConfig};
use kafka_streams::state::{ChangelogPartition, StateRestoreListener};
use kafka_streams::{InvalidStoreReason, StreamsError};

const MINUTE: i64 = 60_000;
const SESSION_GAP: Duration = Duration::from_secs(300);
const PER_MINUTE: &str = "counts-per-minute";
const PER_SESSION: &str = "counts-per-session";
const ENDPOINT: &str = "127.0.0.1:7201";

/// `(plain key, window start, window end)` to count: what an output topic holds.
type Counts = BTreeMap<(String, i64, i64), i64>;

/// Counts per key in 1-minute tumbling windows (into `PER_MINUTE`, written to
/// `per_minute`) and per session of 5 minutes' inactivity gap (into `PER_SESSION`,
/// written to `per_session`), both emitted on every update.
fn start(input: &str, per_minute: &str, per_session: &str, config: StreamsConfig) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    let grouped = builder
        .stream_with::<String, String>(input, Consumed::with(StringSerde, StringSerde))
        .group_by_key();
    grouped
        .windowed_by(
            TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(3600))
                .expect("windows"),
        )
        .count_with(Materialized::as_(PER_MINUTE))
        .to_stream()
        .to_with(
            per_minute,
            Produced::as_("per-minute-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    grouped
        .windowed_by_session(
            SessionWindows::of_inactivity_gap_and_grace(SESSION_GAP, Duration::from_secs(3600))
                .expect("session windows"),
        )
        .count_with(Materialized::as_(PER_SESSION))
        .to_stream()
        .to_with(
            per_session,
            Produced::as_("per-session-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    let streams = KafkaStreams::new(builder.build().expect("topology"), config).expect("client");
    streams.start().expect("start");
    streams
}

/// Produces `(key, timestamp)` records (value `x`) to `topic`, in order, and flushes.
fn produce_at(topic: &str, records: &[(String, i64)]) {
    let producer: BaseProducer = config().to_rdkafka().create().expect("producer");
    for (key, timestamp) in records {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
            .key(key.as_bytes())
            .payload(b"x".as_slice())
            .timestamp(*timestamp);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(20));
                    record = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

fn count_of(bytes: &[u8]) -> i64 {
    i64::from_be_bytes(bytes.try_into().expect("an 8-byte count"))
}

fn long_at(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The latest count per time-windowed key of `topic` (key bytes, then the 8-byte
/// window start, as Kafka's `TimeWindowedSerializer`).
fn time_windowed_counts(topic: &str) -> Counts {
    read_to_end(topic)
        .0
        .into_iter()
        .map(|(key, value)| {
            let split = key.len() - 8;
            let start = long_at(&key, split);
            let plain = String::from_utf8(key[..split].to_vec()).expect("UTF-8 key");
            ((plain, start, start + MINUTE), count_of(&value))
        })
        .collect()
}

/// The latest count per session of `topic` (key bytes, then the session's end and
/// start, as Kafka's `SessionWindowedSerializer`); merged-away sessions were
/// tombstoned, so only the live ones remain.
fn session_counts(topic: &str) -> Counts {
    read_to_end(topic)
        .0
        .into_iter()
        .map(|(key, value)| {
            let split = key.len() - 16;
            let (end, start) = (long_at(&key, split), long_at(&key, split + 8));
            let plain = String::from_utf8(key[..split].to_vec()).expect("UTF-8 key");
            ((plain, start, end), count_of(&value))
        })
        .collect()
}

fn streams_config(app: &str, dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app, config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(dir)
        .application_server(ENDPOINT)
        .expect("config")
}

/// Produces the sensors' readings from `base` on to `input`; returns the counts per
/// minute and per session they make.
fn produce_readings(input: &str, base: i64) -> (Counts, Counts) {
    // Sensor s<i> reports every 20 s for i + 2 readings (spanning one to three
    // minutes), then twice more after a 10-minute pause: a second session.
    let mut records = Vec::new();
    let mut expected_minutes = Counts::new();
    let mut expected_sessions = Counts::new();
    for sensor in 0..6i64 {
        let key = format!("s{sensor}");
        let first: Vec<i64> = (0..sensor + 2).map(|j| base + j * 20_000).collect();
        let pause = first[first.len() - 1] + 600_000;
        let second = [pause, pause + 1_000];
        for ts in first.iter().chain(&second) {
            records.push((key.clone(), *ts));
            let start = ts / MINUTE * MINUTE;
            *expected_minutes
                .entry((key.clone(), start, start + MINUTE))
                .or_default() += 1;
        }
        let sessions = [
            (first[0], first[first.len() - 1], first.len()),
            (second[0], second[1], 2),
        ];
        for (start, end, n) in sessions {
            expected_sessions.insert((key.clone(), start, end), n as i64);
        }
    }
    produce_at(input, &records);
    (expected_minutes, expected_sessions)
}

/// What the stores answer to `all` (windows) and `fetch` of every sensor (sessions),
/// or `None` while they cannot be queried.
fn queried(streams: &KafkaStreams) -> Option<(Counts, Counts)> {
    let windows = streams.window_store::<String, i64>(PER_MINUTE).ok()?;
    let minutes = as_counts(windows.all().ok()?);
    let sessions = streams.session_store::<String, i64>(PER_SESSION).ok()?;
    let mut per_session = Counts::new();
    for sensor in 0..6 {
        per_session.extend(as_counts(sessions.fetch(&format!("s{sensor}")).ok()?));
    }
    Some((minutes, per_session))
}

fn as_counts(entries: Vec<(kafka_streams::dsl::Windowed<String>, i64)>) -> Counts {
    entries
        .into_iter()
        .map(|(w, n)| ((w.key, w.window.start(), w.window.end()), n))
        .collect()
}

#[test]
fn window_and_session_queries_match_the_output_topics() {
    let app = unique_name("wq");
    let input = unique_name("wq-input");
    let per_minute = unique_name("wq-per-minute");
    let per_session = unique_name("wq-per-session");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let streams = start(
        &input,
        &per_minute,
        &per_session,
        streams_config(&app, dir.path()),
    );
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running"
    );

    let base = an_hour_ago_ms() / MINUTE * MINUTE;
    let (expected_minutes, expected_sessions) = produce_readings(&input, base);
    wait_until("the output topics to hold the final counts", || {
        time_windowed_counts(&per_minute) == expected_minutes
            && session_counts(&per_session) == expected_sessions
    });

    // Window store: per key over a time range, every key over a range, everything.
    let windows = streams
        .window_store::<String, i64>(PER_MINUTE)
        .expect("window store");
    let from = base - 3_600_000;
    let to = base + 3_600_000;
    let mut queried = Counts::new();
    for sensor in 0..6 {
        let key = format!("s{sensor}");
        let fetched = windows.fetch(&key, from, to).expect("fetch");
        let starts: Vec<i64> = fetched.iter().map(|(w, _)| w.start()).collect();
        assert!(
            starts.windows(2).all(|pair| pair[0] < pair[1]),
            "{key}: oldest first"
        );
        for (window, count) in fetched {
            assert_eq!(window.end(), window.start() + MINUTE);
            queried.insert((key.clone(), window.start(), window.end()), count);
            assert_eq!(
                windows
                    .fetch_window(&key, window.start())
                    .expect("fetch_window"),
                Some(count)
            );
        }
    }
    assert_eq!(queried, time_windowed_counts(&per_minute));
    assert_eq!(as_counts(windows.all().expect("all")), expected_minutes);
    assert_eq!(
        as_counts(windows.fetch_all(from, to).expect("fetch_all")),
        expected_minutes
    );
    // Only the windows starting within the bounds, both inclusive.
    let first_two: Counts = expected_minutes
        .iter()
        .filter(|((_, start, _), _)| *start <= base + MINUTE)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(
        as_counts(windows.fetch_all(base, base + MINUTE).expect("fetch_all")),
        first_two
    );
    assert_eq!(
        windows
            .fetch(&"s5".to_string(), base + MINUTE, base + MINUTE)
            .expect("fetch"),
        vec![(
            Window::new(base + MINUTE, base + 2 * MINUTE).expect("window"),
            3
        )]
    );
    assert!(windows
        .fetch(&"absent".to_string(), from, to)
        .expect("fetch")
        .is_empty());

    // Session store: every session of a key, and the ones overlapping a range.
    let sessions = streams
        .session_store::<String, i64>(PER_SESSION)
        .expect("session store");
    let mut queried = Counts::new();
    for sensor in 0..6 {
        let key = format!("s{sensor}");
        let fetched = sessions.fetch(&key).expect("fetch");
        assert_eq!(fetched.len(), 2, "{key}: two sessions");
        for (session, count) in fetched {
            assert_eq!(session.key, key);
            queried.insert(
                (key.clone(), session.window.start(), session.window.end()),
                count,
            );
            assert_eq!(
                sessions
                    .fetch_session(&key, session.window.start(), session.window.end())
                    .expect("fetch_session"),
                Some(count)
            );
        }
        // Sessions overlapping a point in time: none 5 min after base, the first at base.
        let found = sessions
            .find_sessions(&key, base + 5 * MINUTE, base + 5 * MINUTE)
            .expect("find_sessions");
        assert!(found.is_empty(), "{key}: no session spans base + 5 min");
        let found = sessions
            .find_sessions(&key, base, base)
            .expect("find_sessions");
        assert_eq!(found.len(), 1, "{key}: the first session spans base");
        assert_eq!(found[0].0.window.start(), base);
    }
    assert_eq!(queried, session_counts(&per_session));

    // The plain key locates a windowed store's key, at the partition of its bytes.
    for sensor in 0..6 {
        let key = format!("s{sensor}");
        for store in [PER_MINUTE, PER_SESSION] {
            let meta = streams
                .query_metadata_for_key(store, key.as_str(), &StringSerde)
                .expect("metadata");
            assert_eq!(meta.active_host, HostInfo::parse(ENDPOINT).expect("host"));
            assert_eq!(
                Some(meta.partition),
                kafka_client::default_partition(Some(key.as_bytes()), 2)
            );
        }
    }

    // Wrong names and types are clear errors.
    assert!(matches!(
        streams.window_store::<String, i64>("nope"),
        Err(StreamsError::InvalidStateStore {
            reason: InvalidStoreReason::Unknown,
            ..
        })
    ));
    for wrong in [
        streams
            .window_store::<String, String>(PER_MINUTE)
            .expect("handle")
            .all()
            .map(|_| ()),
        streams
            .window_store::<String, i64>(PER_SESSION)
            .expect("handle")
            .all()
            .map(|_| ()),
        streams
            .session_store::<String, i64>(PER_MINUTE)
            .expect("handle")
            .fetch(&"s1".to_string())
            .map(|_| ()),
    ] {
        assert!(
            matches!(
                wrong,
                Err(StreamsError::InvalidStateStore {
                    reason: InvalidStoreReason::WrongType { .. },
                    ..
                })
            ),
            "{wrong:?}"
        );
    }

    assert!(streams.close());
    // A closed client answers no query.
    assert!(matches!(
        windows.all(),
        Err(StreamsError::InvalidStateStore {
            reason: InvalidStoreReason::NotAvailable(_),
            ..
        })
    ));
}

/// Holds the first restored batch until the test releases it.
struct GateListener {
    entered: Mutex<Option<Sender<()>>>,
    release: Mutex<Receiver<()>>,
}

impl StateRestoreListener for GateListener {
    fn on_batch_restored(&self, _: &ChangelogPartition, _: &str, _: i64, _: u64) {
        let first = self
            .entered
            .lock()
            .expect("gate")
            .take()
            .map(|tx| tx.send(()));
        if first.is_some() {
            let _ = self.release.lock().expect("gate").recv_timeout(DEADLINE);
        }
    }
}

#[test]
fn queries_during_restore_are_refused_then_answer_the_restored_windows() {
    let app = unique_name("wq-restore");
    let input = unique_name("wq-restore-input");
    let per_minute = unique_name("wq-restore-per-minute");
    let per_session = unique_name("wq-restore-per-session");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let streams = start(
        &input,
        &per_minute,
        &per_session,
        streams_config(&app, dir.path()),
    );
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running"
    );
    let base = an_hour_ago_ms() / MINUTE * MINUTE;
    let expected = produce_readings(&input, base);
    wait_until("the stores to hold the counts", || {
        queried(&streams).as_ref() == Some(&expected)
    });
    assert!(streams.close(), "graceful close");
    drop(streams);

    // Lose the state; the restore from the window and session changelogs is held at
    // its first batch.
    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let config = streams_config(&app, dir.path()).state_restore_listener(GateListener {
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(release_rx),
    });
    let streams = start(&input, &per_minute, &per_session, config);
    entered
        .recv_timeout(DEADLINE)
        .expect("restore never started");

    let windows = streams
        .window_store::<String, i64>(PER_MINUTE)
        .expect("window store");
    let during = windows.fetch(&"s1".to_string(), base, base + 3_600_000);
    assert!(
        matches!(&during, Err(e) if e.is_store_migrating() && e.is_retriable()),
        "a window query during restore gave {during:?}"
    );
    let during = streams
        .session_store::<String, i64>(PER_SESSION)
        .expect("session store")
        .fetch(&"s1".to_string());
    assert!(
        matches!(&during, Err(e) if e.is_store_migrating()),
        "a session query during restore gave {during:?}"
    );
    assert_ne!(streams.state(), State::Running);
    release.send(()).expect("release the restore");

    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running"
    );
    wait_until("the restored stores to answer", || {
        queried(&streams).as_ref() == Some(&expected)
    });
    assert!(streams.close(), "graceful close");
}
