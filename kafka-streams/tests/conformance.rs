//! Conformance with Kafka Streams: every scenario of `conformance/scenarios.txt` runs
//! here through kafka-streams, and through Kafka Streams itself by
//! `conformance/Harness.java` (its DSL, serdes and `TopologyTestDriver`, launched as a
//! single source file); the two outputs must be equal line by line.
//!
//! The Java side needs a JDK (17 or newer) and Kafka Streams' jars in
//! `$KAFKA_STREAMS_JARS`; `scripts/setup.sh` installs both, and without them this test
//! fails (it does not skip). The format of the scenario file and of the output lines
//! is in `conformance/README.md`.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use kafka_client::serde::{
    BigEndian, BytesSerde, Deserializer, MessageField, OptionSerde, SerdeContext, Serializer,
    StringSerde,
};
use kafka_client::{ClientConfig, Headers};
use kafka_streams::dsl::{
    BufferConfig, Consumed, EmitStrategy, JoinWindows, KTable, Materialized, Produced,
    SessionWindowedDeserializer, SessionWindowedSerializer, SlidingWindows, StreamsBuilder,
    Suppressed, TimeWindowedDeserializer, TimeWindowedSerializer, TimeWindows, Window, Windowed,
};
use kafka_streams::processor::{Processor, ProcessorContext, ProcessorError, Record};
use kafka_streams::runtime::StreamsConfig;
use kafka_streams::test_driver::TopologyTestDriver;

/// How long the Java harness may take (JVM start, compiling the source file, the
/// drivers) before it is killed and the test fails.
const HARNESS_TIMEOUT: Duration = Duration::from_secs(150);

/// The topic serdes are called with outside a topology (as in Harness.java).
const TOPIC: &str = "conformance";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("kafka-streams lies in the workspace")
        .to_path_buf()
}

/// One scenario: its header and its data lines, split into tokens.
struct Scenario {
    name: String,
    kind: String,
    params: BTreeMap<String, String>,
    data: Vec<Vec<String>>,
    line: usize,
}

impl Scenario {
    fn here(&self) -> String {
        format!("scenario {} (line {})", self.name, self.line)
    }

    /// Fails on parameters the kind does not take, so that a typo is not ignored.
    fn accept(&self, names: &[&str]) {
        for key in self.params.keys() {
            assert!(
                names.contains(&key.as_str()),
                "{}: kind {} takes no parameter {key}",
                self.here(),
                self.kind
            );
        }
    }

    fn i64_param(&self, key: &str) -> i64 {
        let value = self
            .params
            .get(key)
            .unwrap_or_else(|| panic!("{}: missing parameter {key}", self.here()));
        value
            .parse()
            .unwrap_or_else(|e| panic!("{}: parameter {key}={value}: {e}", self.here()))
    }

    fn i64_param_or(&self, key: &str, fallback: i64) -> i64 {
        if self.params.contains_key(key) {
            self.i64_param(key)
        } else {
            fallback
        }
    }

    fn key_type(&self) -> &str {
        self.params.get("key-type").map_or("string", String::as_str)
    }

    /// The data lines, each checked to be `kind` with `arity` values after it.
    fn data(&self, kind: &str, arity: usize) -> &[Vec<String>] {
        for tokens in &self.data {
            assert!(
                tokens[0] == kind && tokens.len() == arity + 1,
                "{}: kind {} takes data lines `{kind}` with {arity} values, got `{}`",
                self.here(),
                self.kind,
                tokens.join(" ")
            );
        }
        &self.data
    }

    fn emit(&self, out: &mut Vec<String>, fields: &[String]) {
        out.push(format!("{} {}", self.name, fields.join(" ")));
    }
}

fn parse_i64(scenario: &Scenario, token: &str) -> i64 {
    token
        .parse()
        .unwrap_or_else(|e| panic!("{}: `{token}` is not a number: {e}", scenario.here()))
}

fn millis(scenario: &Scenario, ms: i64) -> Duration {
    let ms = u64::try_from(ms)
        .unwrap_or_else(|_| panic!("{}: negative duration {ms} ms", scenario.here()));
    Duration::from_millis(ms)
}

fn parse_scenarios(text: &str) -> Vec<Scenario> {
    let mut scenarios: Vec<Scenario> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let tokens: Vec<String> = line.split(' ').map(str::to_owned).collect();
        if tokens[0] == "scenario" {
            assert!(
                tokens.len() >= 3,
                "line {}: expected `scenario <name> <kind> [<param>=<value> ...]`",
                index + 1
            );
            let params = tokens[3..]
                .iter()
                .map(|token| match token.split_once('=') {
                    Some((key, value)) if !key.is_empty() => (key.to_owned(), value.to_owned()),
                    _ => panic!("line {}: expected <param>=<value>, got {token}", index + 1),
                })
                .collect();
            scenarios.push(Scenario {
                name: tokens[1].clone(),
                kind: tokens[2].clone(),
                params,
                data: Vec::new(),
                line: index + 1,
            });
        } else {
            let scenario = scenarios.last_mut().unwrap_or_else(|| {
                panic!("line {}: data before the first scenario header", index + 1)
            });
            scenario.data.push(tokens);
        }
    }
    scenarios
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn time_windows(scenario: &Scenario) -> TimeWindows {
    let size = scenario.i64_param("size");
    let advance = scenario.i64_param_or("advance", size);
    let grace = scenario.i64_param_or("grace", 0);
    TimeWindows::of_size_and_grace(millis(scenario, size), millis(scenario, grace))
        .and_then(|windows| windows.advance_by(millis(scenario, advance)))
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()))
}

/// `timestamp <ms>` → `timestamp=<ms> windows=<start>/<end>,...`
fn windows_for(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["size", "advance"]);
    let windows = time_windows(scenario);
    for tokens in scenario.data("timestamp", 1) {
        let timestamp = parse_i64(scenario, &tokens[1]);
        let bounds: Vec<String> = windows
            .windows_for(timestamp)
            .iter()
            .map(|w| format!("{}/{}", w.start(), w.end()))
            .collect();
        scenario.emit(
            out,
            &[
                format!("timestamp={timestamp}"),
                format!("windows={}", bounds.join(",")),
            ],
        );
    }
}

/// Serializes `key` with `serializer`, reads it back with `deserializer`, and prints
/// `bytes=<hex> read=<[key@start/end]>`.
fn windowed_key_line<K: Display>(
    scenario: &Scenario,
    out: &mut Vec<String>,
    key: &Windowed<K>,
    serializer: &dyn Serializer<Windowed<K>>,
    deserializer: &dyn Deserializer<Windowed<K>>,
) {
    let headers = Headers::new();
    let ctx = SerdeContext::new(TOPIC, MessageField::Key, &headers);
    let bytes = serializer
        .serialize(key, &ctx)
        .unwrap_or_else(|e| panic!("{}: serializing {key}: {e}", scenario.here()))
        .unwrap_or_else(|| panic!("{}: {key} serialized to null", scenario.here()));
    let read = deserializer
        .deserialize(Some(bytes.as_slice()), &ctx)
        .unwrap_or_else(|e| panic!("{}: reading {key} back: {e}", scenario.here()));
    scenario.emit(
        out,
        &[format!("bytes={}", hex(&bytes)), format!("read={read}")],
    );
}

/// `window <key> <start>` → `bytes=<hex> read=<[key@start/end]>`
fn time_windowed_key(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["size", "key-type"]);
    let size = scenario.i64_param("size");
    fn run<K: Display, S: Serializer<K> + Deserializer<K> + Clone>(
        scenario: &Scenario,
        out: &mut Vec<String>,
        size: i64,
        inner: S,
        parse: impl Fn(&str) -> K,
    ) {
        let serializer = TimeWindowedSerializer::new(inner.clone());
        let deserializer = TimeWindowedDeserializer::new(inner, millis(scenario, size))
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
        for tokens in scenario.data("window", 2) {
            let start = parse_i64(scenario, &tokens[2]);
            let end = start.checked_add(size).unwrap_or(i64::MAX);
            let window = Window::time_window(start, end)
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
            let key = Windowed::new(parse(&tokens[1]), window);
            windowed_key_line(scenario, out, &key, &serializer, &deserializer);
        }
    }
    match scenario.key_type() {
        "string" => run(scenario, out, size, StringSerde, str::to_owned),
        "long" => run(scenario, out, size, BigEndian, |t| parse_i64(scenario, t)),
        other => panic!(
            "{}: key-type {other} is not string or long",
            scenario.here()
        ),
    }
}

/// `window <key> <start> <end>` → `bytes=<hex> read=<[key@start/end]>`
fn session_windowed_key(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["key-type"]);
    fn run<K: Display, S: Serializer<K> + Deserializer<K> + Clone>(
        scenario: &Scenario,
        out: &mut Vec<String>,
        inner: S,
        parse: impl Fn(&str) -> K,
    ) {
        let serializer = SessionWindowedSerializer::new(inner.clone());
        let deserializer = SessionWindowedDeserializer::new(inner);
        for tokens in scenario.data("window", 3) {
            let window = Window::new(
                parse_i64(scenario, &tokens[2]),
                parse_i64(scenario, &tokens[3]),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
            let key = Windowed::new(parse(&tokens[1]), window);
            windowed_key_line(scenario, out, &key, &serializer, &deserializer);
        }
    }
    match scenario.key_type() {
        "string" => run(scenario, out, StringSerde, str::to_owned),
        "long" => run(scenario, out, BigEndian, |t| parse_i64(scenario, t)),
        other => panic!(
            "{}: key-type {other} is not string or long",
            scenario.here()
        ),
    }
}

/// Forwards each record once per window containing its timestamp, keyed by the
/// windowed key (the processor of Harness.java's `window-assignment`).
struct AssignWindows {
    windows: TimeWindows,
}

impl Processor<String, i64, Windowed<String>, i64> for AssignWindows {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<String>, i64>,
        record: Record<String, i64>,
    ) -> Result<(), ProcessorError> {
        for window in self.windows.windows_for(record.timestamp) {
            let key = Windowed::new(record.key.clone(), window);
            ctx.forward(record.clone().with_key(key));
        }
        Ok(())
    }
}

/// The `caching` parameter on a windowed store's `Materialized`: `off` (the default:
/// every update goes downstream) or `on` (our default and Kafka's: the record cache
/// folds updates until the driver's commit after each input record).
fn materialized<V>(scenario: &Scenario) -> Materialized<String, V> {
    match scenario.params.get("caching").map_or("off", String::as_str) {
        "on" => Materialized::default().with_caching_enabled(),
        "off" => Materialized::default().with_caching_disabled(),
        other => panic!("{}: caching is on or off, got {other}", scenario.here()),
    }
}

/// The `emit` parameter: `update` (the default) or `close`.
fn emit_strategy(scenario: &Scenario) -> EmitStrategy {
    match scenario.params.get("emit").map_or("update", String::as_str) {
        "update" => EmitStrategy::on_window_update(),
        "close" => EmitStrategy::on_window_close(),
        other => panic!("{}: emit is update or close, got {other}", scenario.here()),
    }
}

/// Pipes the steps of a timed scenario into `input`: `record <key> <value>
/// <timestamp>` lines, and `advance-wall-clock <ms>` lines (on-window-close emits
/// depend on the wall clock).
fn pipe_steps(scenario: &Scenario, driver: &TopologyTestDriver) {
    let input = driver.create_input_topic_with::<String, String>("input", StringSerde, StringSerde);
    for tokens in &scenario.data {
        match (tokens[0].as_str(), tokens.len()) {
            ("record", 4) => input
                .pipe_input_at(
                    tokens[1].clone(),
                    tokens[2].clone(),
                    parse_i64(scenario, &tokens[3]),
                )
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.here())),
            ("advance-wall-clock", 2) => driver
                .advance_wall_clock_time(millis(scenario, parse_i64(scenario, &tokens[1])))
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.here())),
            _ => panic!(
                "{}: kind {} takes data lines `record <key> <value> <timestamp>` or \
                 `advance-wall-clock <ms>`, got `{}`",
                scenario.here(),
                scenario.kind,
                tokens.join(" ")
            ),
        }
    }
}

/// Steps (`record`, `advance-wall-clock`) through
/// `group_by_key().windowed_by(..).emit_strategy(..).count().to_stream().to(..)` in
/// our test driver → `output key=<hex> read=<[key@start/end]> value=<count>
/// timestamp=<ms>`
fn windowed_count(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&[
        "size",
        "advance",
        "grace",
        "emit",
        "emit-interval",
        "caching",
    ]);
    let size = millis(scenario, scenario.i64_param("size"));
    let windows = time_windows(scenario);
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("input", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by(windows)
        .emit_strategy(emit_strategy(scenario))
        .count_with(materialized(scenario))
        .to_stream()
        // The key goes out with the table's own windowed-key serde.
        .to_with(
            "output",
            Produced::as_("windowed-count-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver = driver_with_emit_interval(
        scenario,
        topology,
        "__emit.interval.ms.kstreams.windowed.aggregation__",
    );
    pipe_steps(scenario, &driver);
    read_windowed_output(scenario, &driver, size, out);
}

/// Steps through `select_key(the value up to its '/')` → `group_by_key()` (a
/// repartition topic, piped through inside the driver) →
/// `windowed_by(..).emit_strategy(..).reduce(a + "," + b)` → `output key=<hex>
/// read=<[key@start/end]> value=<joined values> timestamp=<ms>`
fn windowed_reduce_rekeyed(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["size", "advance", "grace", "emit", "caching"]);
    let size = millis(scenario, scenario.i64_param("size"));
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("input", Consumed::with(StringSerde, StringSerde))
        .select_key(|_, value: &String| {
            value
                .split_once('/')
                .map_or_else(String::new, |(key, _)| key.to_owned())
        })
        .group_by_key()
        .windowed_by(time_windows(scenario))
        .emit_strategy(emit_strategy(scenario))
        .reduce_with(
            |aggregate, value| format!("{aggregate},{value}"),
            materialized(scenario),
        )
        .to_stream()
        .to_with(
            "output",
            Produced::as_("windowed-reduce-sink").with_value_serializer(OptionSerde(StringSerde)),
        );
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver =
        TopologyTestDriver::new(topology).unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    pipe_steps(scenario, &driver);
    read_windowed_values(scenario, &driver, size, StringSerde, out);
}

/// The output topic's records as `output key=<hex> read=<[key@start/end]> value=<v>
/// timestamp=<ms>` lines.
fn read_windowed_output(
    scenario: &Scenario,
    driver: &TopologyTestDriver,
    size: Duration,
    out: &mut Vec<String>,
) {
    read_windowed_values::<i64>(scenario, driver, size, BigEndian, out);
}

/// As [`read_windowed_output`], with values read by `values`.
fn read_windowed_values<V: Display + 'static>(
    scenario: &Scenario,
    driver: &TopologyTestDriver,
    size: Duration,
    values: impl Deserializer<V> + 'static,
    out: &mut Vec<String>,
) {
    let output = driver.create_output_topic_with::<Vec<u8>, V>("output", BytesSerde, values);
    let read = TimeWindowedDeserializer::new(StringSerde, size)
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let headers = Headers::new();
    let ctx = SerdeContext::new("output", MessageField::Key, &headers);
    let records = output
        .read_records_to_list()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    for record in records {
        let key: Windowed<String> = read
            .deserialize(Some(record.key.as_slice()), &ctx)
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
        scenario.emit(
            out,
            &[
                "output".to_owned(),
                format!("key={}", hex(&record.key)),
                format!("read={key}"),
                format!("value={}", record.value),
                format!("timestamp={}", record.timestamp),
            ],
        );
    }
}

/// `record <key> <value> <timestamp>` through our test driver →
/// `output key=<hex> read=<[key@start/end]> value=<v> timestamp=<ms>`
fn window_assignment(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["size", "advance"]);
    let size = millis(scenario, scenario.i64_param("size"));
    let windows = time_windows(scenario);
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, i64>("input", Consumed::with(StringSerde, BigEndian))
        .process::<Windowed<String>, i64, _, _>(move || AssignWindows { windows })
        .to_with(
            "output",
            Produced::with(TimeWindowedSerializer::new(StringSerde), BigEndian),
        );
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver =
        TopologyTestDriver::new(topology).unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let input = driver.create_input_topic_with::<String, i64>("input", StringSerde, BigEndian);
    for tokens in scenario.data("record", 3) {
        input
            .pipe_input_at(
                tokens[1].clone(),
                parse_i64(scenario, &tokens[2]),
                parse_i64(scenario, &tokens[3]),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    }
    read_windowed_output(scenario, &driver, size, out);
}

/// `record <key> <value> <timestamp>` through
/// `group_by_key().windowed_by_session(..).count().to_stream().to(..)` in our test
/// driver → `output key=<hex> read=<[key@start/end]> value=<count|null> timestamp=<ms>`
/// (a merged-away session's tombstone prints `value=null`, as Kafka's null does).
/// Kind `session-count-suppressed`: with
/// `.suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))` after the
/// count.
fn session_count(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["gap", "grace", "caching", "emit"]);
    let windows = kafka_streams::dsl::SessionWindows::of_inactivity_gap_and_grace(
        millis(scenario, scenario.i64_param("gap")),
        millis(scenario, scenario.i64_param_or("grace", 0)),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let builder = StreamsBuilder::new();
    let mut counts = builder
        .stream_with::<String, String>("input", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by_session(windows)
        .emit_strategy(emit_strategy(scenario))
        .count_with(materialized(scenario));
    if scenario.kind == "session-count-suppressed" {
        counts = counts.suppress(Suppressed::until_window_closes(BufferConfig::unbounded()));
    }
    counts
        .to_stream()
        // The key goes out with the table's own session-windowed key serde.
        .to_with(
            "output",
            Produced::as_("session-count-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver =
        TopologyTestDriver::new(topology).unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let input = driver.create_input_topic_with::<String, String>("input", StringSerde, StringSerde);
    for tokens in scenario.data("record", 3) {
        input
            .pipe_input_at(
                tokens[1].clone(),
                tokens[2].clone(),
                parse_i64(scenario, &tokens[3]),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    }
    read_session_output(scenario, &driver, out);
}

/// The output topic's records (session-windowed keys, nullable counts) as `output
/// key=<hex> read=<[key@start/end]> value=<count or null> timestamp=<ms>` lines.
fn read_session_output(scenario: &Scenario, driver: &TopologyTestDriver, out: &mut Vec<String>) {
    let output = driver.create_output_topic_with::<Vec<u8>, Option<i64>>(
        "output",
        BytesSerde,
        OptionSerde(BigEndian),
    );
    let read = SessionWindowedDeserializer::new(StringSerde);
    let headers = Headers::new();
    let ctx = SerdeContext::new("output", MessageField::Key, &headers);
    let records = output
        .read_records_to_list()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    for record in records {
        let key: Windowed<String> = read
            .deserialize(Some(record.key.as_slice()), &ctx)
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
        let value = record
            .value
            .map_or_else(|| "null".to_owned(), |v| v.to_string());
        scenario.emit(
            out,
            &[
                "output".to_owned(),
                format!("key={}", hex(&record.key)),
                format!("read={key}"),
                format!("value={value}"),
                format!("timestamp={}", record.timestamp),
            ],
        );
    }
}

/// Steps through `group_by_key().windowed_by_sliding(SlidingWindows(difference,
/// grace)).count()` → `output key=<hex> read=<[key@start/end]> value=<count>
/// timestamp=<ms>`, the keys written with the table's time-windowed serde (window
/// size = the time difference) and read back with that size.
/// Kind `sliding-count-suppressed`: with
/// `.suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))` after the
/// count.
fn sliding_count(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["difference", "grace", "caching", "emit"]);
    let difference = millis(scenario, scenario.i64_param("difference"));
    let grace = millis(scenario, scenario.i64_param_or("grace", 0));
    let windows = SlidingWindows::of_time_difference_and_grace(difference, grace)
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let builder = StreamsBuilder::new();
    let mut counts = builder
        .stream_with::<String, String>("input", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by_sliding(windows)
        .emit_strategy(emit_strategy(scenario))
        .count_with(materialized(scenario));
    if scenario.kind == "sliding-count-suppressed" {
        counts = counts.suppress(Suppressed::until_window_closes(BufferConfig::unbounded()));
    }
    counts.to_stream().to_with(
        "output",
        Produced::as_("sliding-count-sink").with_value_serializer(OptionSerde(BigEndian)),
    );
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver =
        TopologyTestDriver::new(topology).unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    pipe_steps(scenario, &driver);
    read_windowed_output(scenario, &driver, difference, out);
}

/// Steps through `group_by_key().windowed_by(..).emit_strategy(..)
/// .aggregate(|| "init", agg + "," + value)` → `output key=<hex>
/// read=<[key@start/end]> value=<aggregate> timestamp=<ms>`
fn windowed_aggregate(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["size", "advance", "grace", "emit", "caching"]);
    let size = millis(scenario, scenario.i64_param("size"));
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("input", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by(time_windows(scenario))
        .emit_strategy(emit_strategy(scenario))
        .aggregate_with(
            || "init".to_owned(),
            |_, value: &String, aggregate: String| format!("{aggregate},{value}"),
            string_values(materialized(scenario)),
        )
        .to_stream()
        .to_with(
            "output",
            Produced::as_("windowed-aggregate-sink")
                .with_value_serializer(OptionSerde(StringSerde)),
        );
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver =
        TopologyTestDriver::new(topology).unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    pipe_steps(scenario, &driver);
    read_windowed_values(scenario, &driver, size, StringSerde, out);
}

/// `materialized` with string values.
fn string_values(materialized: Materialized<String, String>) -> Materialized<String, String> {
    materialized.with_value_serde(std::sync::Arc::new(StringSerde))
}

/// `record <a|b> <key> <value> <timestamp>` into two grouped streams cogrouped (a's
/// aggregator appends `+value`, b's `-value`, from `0`), windowed by `windows`
/// (`time`, `sliding` or `session`, sessions merged as `left|right`) →
/// `output key=<hex> read=<[key@start/end]> value=<aggregate|null> timestamp=<ms>`
fn cogrouped_windowed_aggregate(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&[
        "windows",
        "size",
        "advance",
        "difference",
        "gap",
        "grace",
        "caching",
    ]);
    let grace = millis(scenario, scenario.i64_param_or("grace", 0));
    let builder = StreamsBuilder::new();
    let a = builder
        .stream_with::<String, String>("input-a", Consumed::with(StringSerde, StringSerde))
        .group_by_key();
    let b = builder
        .stream_with::<String, String>("input-b", Consumed::with(StringSerde, StringSerde))
        .group_by_key();
    let cogrouped = a
        .cogroup(|_, value: &String, aggregate: String| format!("{aggregate}+{value}"))
        .cogroup(&b, |_, value, aggregate| format!("{aggregate}-{value}"));
    let initializer = || "0".to_owned();
    let windows = scenario
        .params
        .get("windows")
        .map_or("time", String::as_str);
    let table = match windows {
        "time" => cogrouped
            .windowed_by(time_windows(scenario))
            .aggregate_with(initializer, string_values(materialized(scenario))),
        "sliding" => cogrouped
            .windowed_by_sliding(
                SlidingWindows::of_time_difference_and_grace(
                    millis(scenario, scenario.i64_param("difference")),
                    grace,
                )
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.here())),
            )
            .aggregate_with(initializer, string_values(materialized(scenario))),
        "session" => cogrouped
            .windowed_by_session(
                kafka_streams::dsl::SessionWindows::of_inactivity_gap_and_grace(
                    millis(scenario, scenario.i64_param("gap")),
                    grace,
                )
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.here())),
            )
            .aggregate_with(
                initializer,
                |_, left, right: &String| format!("{left}|{right}"),
                string_values(materialized(scenario)),
            ),
        other => panic!(
            "{}: windows is time, sliding or session, got {other}",
            scenario.here()
        ),
    };
    table.to_stream().to_with(
        "output",
        Produced::as_("cogrouped-sink").with_value_serializer(OptionSerde(StringSerde)),
    );
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver =
        TopologyTestDriver::new(topology).unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let inputs = [
        (
            "a",
            driver.create_input_topic_with::<String, String>("input-a", StringSerde, StringSerde),
        ),
        (
            "b",
            driver.create_input_topic_with::<String, String>("input-b", StringSerde, StringSerde),
        ),
    ];
    for tokens in scenario.data("record", 4) {
        let (_, input) = inputs
            .iter()
            .find(|(name, _)| *name == tokens[1])
            .unwrap_or_else(|| panic!("{}: records go to a or b", scenario.here()));
        input
            .pipe_input_at(
                tokens[2].clone(),
                tokens[3].clone(),
                parse_i64(scenario, &tokens[4]),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    }
    let output = driver.create_output_topic_with::<Vec<u8>, Option<String>>(
        "output",
        BytesSerde,
        OptionSerde(StringSerde),
    );
    let headers = Headers::new();
    let ctx = SerdeContext::new("output", MessageField::Key, &headers);
    let window_size = match windows {
        "sliding" => Some(scenario.i64_param("difference")),
        "time" => Some(scenario.i64_param("size")),
        _ => None,
    };
    let read = |bytes: &[u8]| -> Windowed<String> {
        let read = match window_size {
            None => SessionWindowedDeserializer::new(StringSerde).deserialize(Some(bytes), &ctx),
            Some(size) => TimeWindowedDeserializer::new(StringSerde, millis(scenario, size))
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()))
                .deserialize(Some(bytes), &ctx),
        };
        read.unwrap_or_else(|e| panic!("{}: {e}", scenario.here()))
    };
    let records = output
        .read_records_to_list()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    for record in records {
        let key = read(&record.key);
        let value = record.value.unwrap_or_else(|| "null".to_owned());
        scenario.emit(
            out,
            &[
                "output".to_owned(),
                format!("key={}", hex(&record.key)),
                format!("read={key}"),
                format!("value={value}"),
                format!("timestamp={}", record.timestamp),
            ],
        );
    }
}

/// A stream-stream join of `left` (re-keyed by its value up to the first `/` with
/// `rekey=true`) and `right` (string keys and values), or of `left` with itself
/// (`self=true`), joined `<left>+<right>` (`null` for a missing side)
/// within `JoinWindows::of_time_difference_and_grace(before, grace).after(after)` →
/// `output key=<k> value=<v> timestamp=<ms>`.
fn stream_join(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&[
        "join",
        "before",
        "after",
        "grace",
        "self",
        "rekey",
        "emit-interval",
    ]);
    let before = scenario.i64_param("before");
    let windows = JoinWindows::of_time_difference_and_grace(
        millis(scenario, before),
        millis(scenario, scenario.i64_param_or("grace", 0)),
    )
    .and_then(|w| w.after(millis(scenario, scenario.i64_param_or("after", before))))
    .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let self_join = scenario.params.get("self").is_some_and(|s| s == "true");
    let builder = StreamsBuilder::new();
    let read =
        builder.stream_with::<String, String>("left", Consumed::with(StringSerde, StringSerde));
    // rekey=true: keyed by the value up to its first `/`, so a repartition topic comes
    // before the join.
    let left = match scenario.params.get("rekey").is_some_and(|s| s == "true") {
        true => {
            read.select_key(|_, v: &String| v.split_once('/').map_or("", |(k, _)| k).to_owned())
        }
        false => read,
    };
    let right = match self_join {
        true => left.clone(),
        false => {
            builder.stream_with::<String, String>("right", Consumed::with(StringSerde, StringSerde))
        }
    };
    let show = |v: Option<&String>| v.map_or_else(|| "null".to_owned(), String::clone);
    let result = match scenario.params.get("join").map_or("inner", String::as_str) {
        "inner" => left.join(&right, |l: &String, r: &String| format!("{l}+{r}"), windows),
        "left" => left.left_join(
            &right,
            move |l: &String, r: Option<&String>| format!("{l}+{}", show(r)),
            windows,
        ),
        "outer" => left.outer_join(
            &right,
            move |l: Option<&String>, r: Option<&String>| format!("{}+{}", show(l), show(r)),
            windows,
        ),
        other => panic!(
            "{}: join is inner, left or outer, got {other}",
            scenario.here()
        ),
    };
    result.to("output");
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver = driver_with_emit_interval(
        scenario,
        topology,
        "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__",
    );
    let left_input =
        driver.create_input_topic_with::<String, String>("left", StringSerde, StringSerde);
    let right_input =
        driver.create_input_topic_with::<String, String>("right", StringSerde, StringSerde);
    for tokens in &scenario.data {
        let side = tokens[0].as_str();
        match (side, tokens.len()) {
            ("left", 4) | ("right", 4) if side == "left" || !self_join => {
                let input = if side == "left" {
                    &left_input
                } else {
                    &right_input
                };
                input
                    .pipe_input_at(
                        tokens[1].clone(),
                        tokens[2].clone(),
                        parse_i64(scenario, &tokens[3]),
                    )
                    .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()))
            }
            ("advance-wall-clock", 2) => driver
                .advance_wall_clock_time(millis(scenario, parse_i64(scenario, &tokens[1])))
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.here())),
            _ => panic!(
                "{}: kind {} takes data lines `left|right <key> <value> <timestamp>` (only \
                 `left` with self=true) or `advance-wall-clock <ms>`, got `{}`",
                scenario.here(),
                scenario.kind,
                tokens.join(" ")
            ),
        }
    }
    let output =
        driver.create_output_topic_with::<String, String>("output", StringSerde, StringSerde);
    let records = output
        .read_records_to_list()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    for record in records {
        scenario.emit(
            out,
            &[
                "output".to_owned(),
                format!("key={}", record.key),
                format!("value={}", record.value),
                format!("timestamp={}", record.timestamp),
            ],
        );
    }
}

/// A test driver for `topology`, with the scenario's `emit-interval` parameter, if
/// any, as the internal config `key` (the driver sets it to 0 unless configured, as
/// Kafka's does).
fn driver_with_emit_interval(
    scenario: &Scenario,
    topology: kafka_streams::topology::Topology,
    key: &str,
) -> TopologyTestDriver {
    let mut config = StreamsConfig::new(
        format!("conformance-{}", scenario.name),
        ClientConfig::new("unused:9092"),
    );
    if let Some(interval) = scenario.params.get("emit-interval") {
        config = config
            .set(key, interval)
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    }
    TopologyTestDriver::with_config(topology, config)
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()))
}

/// Our topology's description as `describe <line>` lines (blank lines left out).
fn describe(
    scenario: &Scenario,
    topology: &kafka_streams::topology::Topology,
    out: &mut Vec<String>,
) {
    for line in topology.describe().to_string().lines() {
        if !line.trim().is_empty() {
            scenario.emit(out, &["describe".to_owned(), line.trim_end().to_owned()]);
        }
    }
}

/// Steps through `group_by_key().windowed_by(..).count().suppress(
/// Suppressed::until_window_closes(BufferConfig::unbounded()))` (named `name` if
/// given) → the topology's `describe` lines, then `output key=<hex>
/// read=<[key@start/end]> value=<count> timestamp=<ms>`
fn windowed_count_suppressed(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["size", "advance", "grace", "name"]);
    let size = millis(scenario, scenario.i64_param("size"));
    let mut suppressed = Suppressed::until_window_closes(BufferConfig::unbounded());
    if let Some(name) = scenario.params.get("name") {
        suppressed = suppressed.with_name(name);
    }
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("input", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by(time_windows(scenario))
        .count()
        .suppress(suppressed)
        .to_stream()
        .to_with(
            "output",
            Produced::with(
                TimeWindowedSerializer::new(StringSerde),
                OptionSerde(BigEndian),
            ),
        );
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    describe(scenario, &topology, out);
    let driver =
        TopologyTestDriver::new(topology).unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    pipe_steps(scenario, &driver);
    read_windowed_output(scenario, &driver, size, out);
}

/// `record <key> <value or -> <timestamp>` through `table("input")` (caching disabled)
/// `.suppress(Suppressed::until_time_limit(limit, buffer)).to_stream()`, the buffer
/// unbounded or bounded by `max-records` / `max-bytes`, emitting early (`full=emit`,
/// the default) or shutting down (`full=shutdown`) when full → `output key=<k>
/// value=<v or null> timestamp=<ms>`, then `failed buffer-full` if the buffer shut
/// down (processing stops there).
fn table_suppress_time_limit(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["limit", "max-records", "max-bytes", "full"]);
    let limit = millis(scenario, scenario.i64_param("limit"));
    let bounded = ["max-records", "max-bytes"]
        .iter()
        .any(|p| scenario.params.contains_key(*p));
    let bound = |name: &str| {
        scenario
            .params
            .get(name)
            .map_or(u64::MAX, |v| parse_i64(scenario, v).unsigned_abs())
    };
    let suppressed = if bounded {
        let eager =
            BufferConfig::max_records(bound("max-records")).with_max_bytes(bound("max-bytes"));
        match scenario.params.get("full").map_or("emit", String::as_str) {
            "emit" => Suppressed::until_time_limit(limit, eager),
            "shutdown" => Suppressed::until_time_limit(limit, eager.shut_down_when_full()),
            other => panic!("{}: full is emit or shutdown, got {other}", scenario.here()),
        }
    } else {
        Suppressed::until_time_limit(limit, BufferConfig::unbounded())
    };
    let builder = StreamsBuilder::new();
    builder
        .table_with::<String, String>(
            "input",
            Materialized::as_("input-table").with_caching_disabled(),
        )
        .suppress(suppressed)
        .to_stream()
        .to_with(
            "output",
            Produced::with(StringSerde, OptionSerde(StringSerde)),
        );
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver =
        TopologyTestDriver::new(topology).unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let input = driver.create_input_topic_with::<String, Option<String>>(
        "input",
        StringSerde,
        OptionSerde(StringSerde),
    );
    let mut failed = false;
    for tokens in scenario.data("record", 3) {
        let value = (tokens[2] != "-").then(|| tokens[2].clone());
        if let Err(e) =
            input.pipe_input_at(tokens[1].clone(), value, parse_i64(scenario, &tokens[3]))
        {
            let message = format!("{e:#}");
            assert!(
                message.contains("buffer exceeded its max capacity"),
                "{}: {message}",
                scenario.here()
            );
            failed = true;
            break;
        }
    }
    let output = driver.create_output_topic_with::<String, Option<String>>(
        "output",
        StringSerde,
        OptionSerde(StringSerde),
    );
    let records = output
        .read_records_to_list()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    for record in records {
        let value = record.value.unwrap_or_else(|| "null".to_owned());
        scenario.emit(
            out,
            &[
                "output".to_owned(),
                format!("key={}", record.key),
                format!("value={value}"),
                format!("timestamp={}", record.timestamp),
            ],
        );
    }
    if failed {
        scenario.emit(out, &["failed".to_owned(), "buffer-full".to_owned()]);
    }
}

/// A value token: `null` is a null value (a tombstone).
fn nullable(token: &str) -> Option<String> {
    (token != "null").then(|| token.to_owned())
}

/// Pipes `<topic> <key> <value|null> <timestamp>` lines into the input topics named by
/// their first token (one of `topics`), in file order.
fn pipe_topics(scenario: &Scenario, driver: &TopologyTestDriver, topics: &[&str]) {
    let inputs: BTreeMap<&str, _> = topics
        .iter()
        .map(|t| {
            let input = driver.create_input_topic_with::<String, Option<String>>(
                t,
                StringSerde,
                OptionSerde(StringSerde),
            );
            (*t, input)
        })
        .collect();
    for tokens in &scenario.data {
        let input = match (inputs.get(tokens[0].as_str()), tokens.len()) {
            (Some(input), 4) => input,
            _ => panic!(
                "{}: kind {} takes data lines `<{}> <key> <value|null> <timestamp>`, got `{}`",
                scenario.here(),
                scenario.kind,
                topics.join("|"),
                tokens.join(" ")
            ),
        };
        input
            .pipe_input_at(
                tokens[1].clone(),
                nullable(&tokens[2]),
                parse_i64(scenario, &tokens[3]),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    }
}

/// The records of `output` as `output key=<k> value=<v|null> timestamp=<ms>` lines.
fn read_output(scenario: &Scenario, driver: &TopologyTestDriver, out: &mut Vec<String>) {
    let output = driver.create_output_topic_with::<String, Option<String>>(
        "output",
        StringSerde,
        OptionSerde(StringSerde),
    );
    let records = output
        .read_records_to_list()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    for record in records {
        scenario.emit(
            out,
            &[
                "output".to_owned(),
                format!("key={}", record.key),
                format!("value={}", record.value.as_deref().unwrap_or("null")),
                format!("timestamp={}", record.timestamp),
            ],
        );
    }
}

/// Builds the topology, pipes the scenario's lines into `topics` and prints
/// `output`'s records.
fn run_topics(
    scenario: &Scenario,
    builder: &StreamsBuilder,
    topics: &[&str],
    out: &mut Vec<String>,
) {
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver =
        TopologyTestDriver::new(topology).unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    pipe_topics(scenario, &driver, topics);
    read_output(scenario, &driver, out);
}

/// The `join` parameter of stream joins: `inner` (the default) or `left`.
fn left_join(scenario: &Scenario) -> bool {
    match scenario.params.get("join").map_or("inner", String::as_str) {
        "inner" => false,
        "left" => true,
        other => panic!("{}: join is inner or left, got {other}", scenario.here()),
    }
}

/// The stream value up to its first `/` (the rekeying and global-table key selector).
fn value_prefix(value: &str) -> String {
    value.split_once('/').map_or("", |(p, _)| p).to_owned()
}

fn bool_param(scenario: &Scenario, key: &str) -> bool {
    match scenario.params.get(key).map_or("false", String::as_str) {
        "true" => true,
        "false" => false,
        other => panic!("{}: {key} is true or false, got {other}", scenario.here()),
    }
}

fn string_table(builder: &StreamsBuilder, topic: &str) -> KTable<String, String> {
    builder.table_with::<String, String>(topic, Materialized::default())
}

/// `stream` records joined (`join`: inner or left) with the table of `table` (with
/// `rekey=true` after `select_key(the value's prefix)`, so through a repartition topic),
/// `value + "+" + row` → `output key=.. value=.. timestamp=..`
fn stream_table_join(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["join", "rekey"]);
    let builder = StreamsBuilder::new();
    let table = string_table(&builder, "table");
    let mut stream =
        builder.stream_with::<String, String>("stream", Consumed::with(StringSerde, StringSerde));
    if bool_param(scenario, "rekey") {
        stream = stream.select_key(|_, value| value_prefix(value));
    }
    let result = if left_join(scenario) {
        stream.left_join_table(&table, |value, row: Option<&String>| {
            format!("{value}+{}", row.map_or("null", String::as_str))
        })
    } else {
        stream.join_table(&table, |value, row: &String| format!("{value}+{row}"))
    };
    result.to_with("output", Produced::with(StringSerde, StringSerde));
    run_topics(scenario, &builder, &["stream", "table"], out);
}

/// `stream` records joined (`join`: inner or left) with the global table of `global`
/// at the key `value_prefix(value)`, `value + "+" + row` → `output ..` lines.
fn stream_global_join(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["join"]);
    let builder = StreamsBuilder::new();
    let global = builder.global_table::<String, String>("global");
    let stream =
        builder.stream_with::<String, String>("stream", Consumed::with(StringSerde, StringSerde));
    let select = |_: &String, value: &String| value_prefix(value);
    let result = if left_join(scenario) {
        stream.left_join_global(&global, select, |value, row: Option<&String>| {
            format!("{value}+{}", row.map_or("null", String::as_str))
        })
    } else {
        stream.join_global(&global, select, |value, row: &String| {
            format!("{value}+{row}")
        })
    };
    result.to_with("output", Produced::with(StringSerde, StringSerde));
    run_topics(scenario, &builder, &["stream", "global"], out);
}

/// The tables of `left` and `right` joined (`join`: inner, left or outer; with
/// `materialized=true` into the store `joined`), `l + "+" + r` (`null` for an absent
/// side), `to_stream()` → `output ..` lines (a deleted result prints `value=null`).
fn table_table_join(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["join", "materialized", "count-by-right"]);
    let builder = StreamsBuilder::new();
    let left = string_table(&builder, "left");
    let right = string_table(&builder, "right");
    let store = bool_param(scenario, "materialized").then(|| {
        Materialized::<String, String>::as_("joined").with_value_serde(Arc::new(StringSerde))
    });
    let show = |v: Option<&String>| v.map_or("null", String::as_str).to_owned();
    let joined = match (
        scenario.params.get("join").map_or("inner", String::as_str),
        store,
    ) {
        ("inner", None) => left.join(&right, |l, r| format!("{l}+{r}")),
        ("inner", Some(m)) => left.join_materialized(&right, |l, r| format!("{l}+{r}"), m),
        ("left", None) => left.left_join(&right, move |l, r| format!("{l}+{}", show(r))),
        ("left", Some(m)) => {
            left.left_join_materialized(&right, move |l, r| format!("{l}+{}", show(r)), m)
        }
        ("outer", None) => left.outer_join(&right, move |l, r| format!("{}+{}", show(l), show(r))),
        ("outer", Some(m)) => {
            left.outer_join_materialized(&right, move |l, r| format!("{}+{}", show(l), show(r)), m)
        }
        (other, _) => panic!(
            "{}: join is inner, left or outer, got {other}",
            scenario.here()
        ),
    };
    if bool_param(scenario, "count-by-right") {
        // Results per right value: a result that changes or goes away is subtracted
        // from its old group (the join's old values).
        joined
            .group_by(|_, value: &String| {
                let right = value.split_once('+').map_or("", |(_, r)| r);
                (right.to_owned(), value.clone())
            })
            .count()
            .to_stream()
            .map_values(|count| count.map(|c| c.to_string()))
            .to_with(
                "output",
                Produced::with(StringSerde, OptionSerde(StringSerde)),
            );
    } else {
        joined.to_stream().to_with(
            "output",
            Produced::with(StringSerde, OptionSerde(StringSerde)),
        );
    }
    run_topics(scenario, &builder, &["left", "right"], out);
}

/// The tables of `left` and `right` joined on the foreign key `value_prefix(left
/// value)` (`join`: inner or left; with `materialized=true` into the store
/// `fk-joined`), `l + "+" + r`, `to_stream()` → `output ..` lines.
fn foreign_key_join(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["join", "materialized"]);
    let builder = StreamsBuilder::new();
    let left = string_table(&builder, "left");
    let right = string_table(&builder, "right");
    let store = bool_param(scenario, "materialized").then(|| {
        Materialized::<String, String>::as_("fk-joined").with_value_serde(Arc::new(StringSerde))
    });
    let fk = |value: &String| value_prefix(value);
    let left_joiner =
        |l: &String, r: Option<&String>| format!("{l}+{}", r.map_or("null", String::as_str));
    let joined = match (
        scenario.params.get("join").map_or("inner", String::as_str),
        store,
    ) {
        ("inner", None) => left.join_foreign_key(&right, fk, |l, r| format!("{l}+{r}")),
        ("inner", Some(m)) => {
            left.join_foreign_key_materialized(&right, fk, |l, r| format!("{l}+{r}"), m)
        }
        ("left", None) => left.left_join_foreign_key(&right, fk, left_joiner),
        ("left", Some(m)) => left.left_join_foreign_key_materialized(&right, fk, left_joiner, m),
        (other, _) => panic!("{}: join is inner or left, got {other}", scenario.here()),
    };
    joined.to_stream().to_with(
        "output",
        Produced::with(StringSerde, OptionSerde(StringSerde)),
    );
    run_topics(scenario, &builder, &["left", "right"], out);
}

/// Our output for every scenario, in the harness's line format.
/// `record <key> <value|null> <timestamp>` into the table `input`; `group_by(the value
/// up to its '/' → key=rest)` then `count()` or a concatenating `aggregate()` with a
/// subtractor (`aggregate=count|concat`, caching disabled) → `output key=<k>
/// value=<v|null> timestamp=<ms>`
fn table_group_by(scenario: &Scenario, out: &mut Vec<String>) {
    scenario.accept(&["aggregate"]);
    let builder = StreamsBuilder::new();
    let grouped = builder
        .table::<String, String>("input")
        .group_by(|key, value| {
            let (group, rest) = value.split_once('/').unwrap_or(("", value));
            (group.to_owned(), format!("{key}={rest}"))
        });
    let aggregate = scenario
        .params
        .get("aggregate")
        .map_or("count", String::as_str);
    match aggregate {
        "count" => grouped
            .count_with(Materialized::default().with_caching_disabled())
            .to_stream()
            .map_values(|count| count.map(|c| c.to_string()))
            .to_with(
                "output",
                Produced::as_("table-group-by-sink")
                    .with_value_serializer(OptionSerde(StringSerde)),
            ),
        "concat" => grouped
            .aggregate_with(
                String::new,
                |_, value: &String, agg: String| {
                    if agg.is_empty() {
                        value.clone()
                    } else {
                        format!("{agg},{value}")
                    }
                },
                |_, value: &String, agg: String| {
                    agg.split(',')
                        .filter(|part| part != value)
                        .collect::<Vec<_>>()
                        .join(",")
                },
                Materialized::default().with_caching_disabled(),
            )
            .to_stream()
            .to_with(
                "output",
                Produced::as_("table-group-by-sink")
                    .with_value_serializer(OptionSerde(StringSerde)),
            ),
        other => panic!(
            "{}: aggregate is count or concat, got {other}",
            scenario.here()
        ),
    }
    let topology = builder
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let driver =
        TopologyTestDriver::new(topology).unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    let input = driver.create_input_topic_with::<String, Option<String>>(
        "input",
        StringSerde,
        OptionSerde(StringSerde),
    );
    for tokens in scenario.data("record", 3) {
        let value = (tokens[2] != "null").then(|| tokens[2].clone());
        input
            .pipe_input_at(tokens[1].clone(), value, parse_i64(scenario, &tokens[3]))
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.here()));
    }
    read_output(scenario, &driver, out);
}

fn run_ours(scenarios: &[Scenario]) -> Vec<String> {
    let mut out = Vec::new();
    for scenario in scenarios {
        match scenario.kind.as_str() {
            "windows-for" => windows_for(scenario, &mut out),
            "time-windowed-key" => time_windowed_key(scenario, &mut out),
            "session-windowed-key" => session_windowed_key(scenario, &mut out),
            "window-assignment" => window_assignment(scenario, &mut out),
            "windowed-count" => windowed_count(scenario, &mut out),
            "session-count" => session_count(scenario, &mut out),
            "windowed-reduce-rekeyed" => windowed_reduce_rekeyed(scenario, &mut out),
            "sliding-count" => sliding_count(scenario, &mut out),
            "windowed-count-suppressed" => windowed_count_suppressed(scenario, &mut out),
            "session-count-suppressed" => session_count(scenario, &mut out),
            "sliding-count-suppressed" => sliding_count(scenario, &mut out),
            "table-suppress-time-limit" => table_suppress_time_limit(scenario, &mut out),
            "cogrouped-windowed-aggregate" => cogrouped_windowed_aggregate(scenario, &mut out),
            "windowed-aggregate" => windowed_aggregate(scenario, &mut out),
            "table-group-by" => table_group_by(scenario, &mut out),
            "stream-join" => stream_join(scenario, &mut out),
            "stream-table-join" => stream_table_join(scenario, &mut out),
            "stream-global-join" => stream_global_join(scenario, &mut out),
            "table-table-join" => table_table_join(scenario, &mut out),
            "fk-join" => foreign_key_join(scenario, &mut out),
            other => panic!("{}: unknown kind {other}", scenario.here()),
        }
    }
    out
}

const SETUP_HINT: &str = "run scripts/setup.sh, which installs a JDK and fetches Kafka Streams' jars into $KAFKA_STREAMS_JARS";

/// Where Kafka Streams' jars are: `$KAFKA_STREAMS_JARS`, or where scripts/env.sh puts
/// them when the variable is not set (a plain `cargo test`).
fn streams_jars() -> PathBuf {
    if let Some(dir) = std::env::var_os("KAFKA_STREAMS_JARS") {
        return PathBuf::from(dir);
    }
    let env_sh = repo_root().join("scripts/env.sh");
    let output = Command::new("bash")
        .arg("-c")
        .arg("source \"$1\" && printf %s \"$KAFKA_STREAMS_JARS\"")
        .arg("bash")
        .arg(&env_sh)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash to read {}: {e}", env_sh.display()));
    assert!(
        output.status.success() && !output.stdout.is_empty(),
        "{} did not name KAFKA_STREAMS_JARS: {}",
        env_sh.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs Harness.java on `scenario_file` and returns its output lines. Fails if java or
/// the jars are missing, if the harness fails, or if it takes longer than
/// [`HARNESS_TIMEOUT`] (then it is killed).
fn run_kafka_streams(scenario_file: &Path) -> Vec<String> {
    let jars = streams_jars();
    assert!(
        jars.join(".complete").is_file(),
        "Kafka Streams' jars are missing from {}: {SETUP_HINT}",
        jars.display()
    );
    let java = match std::env::var_os("JAVA_HOME") {
        Some(home) => PathBuf::from(home).join("bin/java"),
        None => PathBuf::from("java"),
    };
    let root = repo_root();
    let mut child = Command::new(&java)
        .arg("-cp")
        .arg(jars.join("*"))
        .arg(root.join("conformance/Harness.java"))
        .arg(scenario_file)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {SETUP_HINT}", java.display()));
    // Read both pipes on threads so that neither fills up and blocks the JVM; stdout
    // closes when the JVM exits, which is what the timeout waits for.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let result = stdout.read_to_string(&mut text).map(|_| text);
        // The receiver is gone only after a timeout, when the result no longer matters.
        let _ = sender.send(result);
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdout = match receiver.recv_timeout(HARNESS_TIMEOUT) {
        Ok(result) => result.expect("read the harness's stdout"),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr_reader.join().unwrap_or_default();
            panic!("the Java harness did not finish within {HARNESS_TIMEOUT:?} and was killed; its stderr:\n{stderr}");
        }
    };
    let status = child.wait().expect("wait for the Java harness");
    let stderr = stderr_reader.join().unwrap_or_default();
    assert!(
        status.success(),
        "the Java harness failed ({status}); if java or the jars are missing, {SETUP_HINT}. Its stderr:\n{stderr}"
    );
    stdout.lines().map(str::to_owned).collect()
}

#[test]
fn scenarios_give_the_same_output_as_kafka_streams() {
    let scenario_file = repo_root().join("conformance/scenarios.txt");
    let text = std::fs::read_to_string(&scenario_file)
        .unwrap_or_else(|e| panic!("read {}: {e}", scenario_file.display()));
    let scenarios = parse_scenarios(&text);
    assert!(
        !scenarios.is_empty(),
        "no scenarios in {}",
        scenario_file.display()
    );

    let ours = run_ours(&scenarios);
    let theirs = run_kafka_streams(&scenario_file);

    // Every scenario printed something on Kafka Streams' side, so an empty or cut
    // output cannot pass as equal.
    for scenario in &scenarios {
        let prefix = format!("{} ", scenario.name);
        assert!(
            theirs.iter().any(|line| line.starts_with(&prefix)),
            "Kafka Streams printed nothing for {}; its output:\n{}",
            scenario.here(),
            theirs.join("\n")
        );
    }
    let first_difference = ours
        .iter()
        .zip(&theirs)
        .position(|(a, b)| a != b)
        .or_else(|| (ours.len() != theirs.len()).then_some(ours.len().min(theirs.len())));
    if let Some(at) = first_difference {
        panic!(
            "output differs from Kafka Streams' at line {}:\n  ours:          {}\n  Kafka Streams: {}\n\nours ({} lines):\n{}\n\nKafka Streams ({} lines):\n{}",
            at + 1,
            ours.get(at).map_or("<none>", String::as_str),
            theirs.get(at).map_or("<none>", String::as_str),
            ours.len(),
            ours.join("\n"),
            theirs.len(),
            theirs.join("\n")
        );
    }
}

#[test]
fn the_scenario_file_parses_into_headers_and_data() {
    let scenarios = parse_scenarios(
        "# comment\n\nscenario a windows-for size=10 advance=5\ntimestamp 3\ntimestamp 4\nscenario b session-windowed-key\n",
    );
    assert_eq!(scenarios.len(), 2);
    assert_eq!(
        (scenarios[0].name.as_str(), scenarios[0].kind.as_str()),
        ("a", "windows-for")
    );
    assert_eq!(scenarios[0].i64_param("advance"), 5);
    assert_eq!(scenarios[0].data, [["timestamp", "3"], ["timestamp", "4"]]);
    assert_eq!(scenarios[1].line, 6);
    assert!(scenarios[1].data.is_empty());
    let mut out = Vec::new();
    windows_for(&scenarios[0], &mut out);
    assert_eq!(
        out,
        ["a timestamp=3 windows=0/10", "a timestamp=4 windows=0/10"]
    );
}
