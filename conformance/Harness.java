// The Kafka Streams side of the conformance test (kafka-streams/tests/conformance.rs):
// runs each scenario of a scenario file through Kafka Streams itself (its DSL, serdes
// and TopologyTestDriver) and prints the results in the canonical line format that the
// Rust side prints too. Run as a single source file, without a build step:
//
//   java -cp "$KAFKA_STREAMS_JARS/*" conformance/Harness.java conformance/scenarios.txt
//
// The file format and the output lines of each scenario kind are in conformance/README.md.
// Any problem (a malformed line, an unknown kind) ends the run with a non-zero status.

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.stream.Stream;

import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.LongSerializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindowedDeserializer;
import org.apache.kafka.streams.kstream.SessionWindowedSerializer;
import org.apache.kafka.streams.kstream.TimeWindowedDeserializer;
import org.apache.kafka.streams.kstream.TimeWindowedSerializer;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.kstream.internals.SessionWindow;
import org.apache.kafka.streams.kstream.internals.TimeWindow;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.test.TestRecord;

public class Harness {
    /** The topic name serdes are called with outside a topology. */
    static final String TOPIC = "conformance";

    /** One scenario: its header and its data lines (each split into tokens). */
    record Scenario(String name, String kind, Map<String, String> params, List<String[]> data, int line) {
        String where() {
            return "scenario " + name + " (line " + line + ")";
        }

        /** Fails on parameters the kind does not take, so that a typo is not ignored. */
        void accept(final String... names) {
            final Set<String> known = Set.of(names);
            for (final String key : params.keySet()) {
                if (!known.contains(key)) {
                    throw new IllegalArgumentException(where() + ": kind " + kind + " takes no parameter " + key);
                }
            }
        }

        long longParam(final String key) {
            final String value = params.get(key);
            if (value == null) {
                throw new IllegalArgumentException(where() + ": missing parameter " + key);
            }
            return Long.parseLong(value);
        }

        long longParam(final String key, final long fallback) {
            return params.containsKey(key) ? longParam(key) : fallback;
        }

        String param(final String key, final String fallback) {
            return params.getOrDefault(key, fallback);
        }

        /**
         * The data lines of a timed topology scenario, each `record <key> <value> <timestamp>`
         * or `advance-wall-clock <ms>`.
         */
        List<String[]> steps() {
            for (final String[] tokens : data) {
                final boolean record = tokens[0].equals("record") && tokens.length == 4;
                final boolean clock = tokens[0].equals("advance-wall-clock") && tokens.length == 2;
                if (!record && !clock) {
                    throw new IllegalArgumentException(where() + ": kind " + kind + " takes data lines `record <key> <value> <timestamp>`"
                        + " or `advance-wall-clock <ms>`, got `" + String.join(" ", tokens) + "`");
                }
            }
            return data;
        }

        /** The data lines, each checked to be `type` with `arity` values after it. */
        List<String[]> data(final String type, final int arity) {
            for (final String[] tokens : data) {
                if (!tokens[0].equals(type) || tokens.length != arity + 1) {
                    throw new IllegalArgumentException(where() + ": kind " + kind + " takes data lines `" + type
                        + "` with " + arity + " values, got `" + String.join(" ", tokens) + "`");
                }
            }
            return data;
        }
    }

    public static void main(final String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: java -cp \"$KAFKA_STREAMS_JARS/*\" conformance/Harness.java <scenario-file>");
            System.exit(2);
        }
        final List<String> out = new ArrayList<>();
        for (final Scenario scenario : parse(Path.of(args[0]))) {
            switch (scenario.kind()) {
                case "windows-for" -> windowsFor(scenario, out);
                case "time-windowed-key" -> timeWindowedKey(scenario, out);
                case "session-windowed-key" -> sessionWindowedKey(scenario, out);
                case "window-assignment" -> windowAssignment(scenario, out);
                case "windowed-count" -> windowedCount(scenario, out);
                case "session-count" -> sessionCount(scenario, out);
                case "windowed-reduce-rekeyed" -> windowedReduceRekeyed(scenario, out);
                case "sliding-count" -> slidingCount(scenario, out);
                case "table-group-by" -> tableGroupBy(scenario, out);
                case "stream-join" -> streamJoin(scenario, out);
                default -> throw new IllegalArgumentException(scenario.where() + ": unknown kind " + scenario.kind());
            }
        }
        // One write at the end: a run that fails half-way prints no partial output.
        final StringBuilder text = new StringBuilder();
        for (final String line : out) {
            text.append(line).append('\n');
        }
        System.out.print(text);
        System.out.flush();
    }

    static List<Scenario> parse(final Path file) throws IOException {
        final List<Scenario> scenarios = new ArrayList<>();
        final List<String> lines = Files.readAllLines(file);
        String name = null;
        String kind = null;
        Map<String, String> params = null;
        List<String[]> data = null;
        int headerLine = 0;
        for (int i = 0; i < lines.size(); i++) {
            final String line = lines.get(i).strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            final String[] tokens = line.split(" ");
            if (tokens[0].equals("scenario")) {
                if (name != null) {
                    scenarios.add(new Scenario(name, kind, params, data, headerLine));
                }
                if (tokens.length < 3) {
                    throw new IllegalArgumentException("line " + (i + 1) + ": expected `scenario <name> <kind> [<param>=<value> ...]`");
                }
                name = tokens[1];
                kind = tokens[2];
                params = new LinkedHashMap<>();
                for (int t = 3; t < tokens.length; t++) {
                    final int eq = tokens[t].indexOf('=');
                    if (eq <= 0) {
                        throw new IllegalArgumentException("line " + (i + 1) + ": expected <param>=<value>, got " + tokens[t]);
                    }
                    params.put(tokens[t].substring(0, eq), tokens[t].substring(eq + 1));
                }
                data = new ArrayList<>();
                headerLine = i + 1;
            } else if (name == null) {
                throw new IllegalArgumentException("line " + (i + 1) + ": data before the first scenario header");
            } else {
                data.add(tokens);
            }
        }
        if (name != null) {
            scenarios.add(new Scenario(name, kind, params, data, headerLine));
        }
        return scenarios;
    }

    static void emit(final List<String> out, final Scenario scenario, final String... fields) {
        out.add(scenario.name() + " " + String.join(" ", fields));
    }

    static String hex(final byte[] bytes) {
        return HexFormat.of().formatHex(bytes);
    }

    /** Inner key serde and key parser of the `key-type` parameter. */
    @SuppressWarnings("unchecked")
    static Serde<Object> keySerde(final Scenario scenario) {
        return switch (scenario.param("key-type", "string")) {
            case "string" -> (Serde<Object>) (Serde<?>) Serdes.String();
            case "long" -> (Serde<Object>) (Serde<?>) Serdes.Long();
            default -> throw new IllegalArgumentException(scenario.where() + ": key-type is string or long");
        };
    }

    static Object parseKey(final Scenario scenario, final String token) {
        return scenario.param("key-type", "string").equals("long") ? (Object) Long.parseLong(token) : token;
    }

    static TimeWindows timeWindows(final Scenario scenario) {
        final long size = scenario.longParam("size");
        final long grace = scenario.longParam("grace", 0);
        return TimeWindows.ofSizeAndGrace(Duration.ofMillis(size), Duration.ofMillis(grace))
            .advanceBy(Duration.ofMillis(scenario.longParam("advance", size)));
    }

    /** `timestamp <ms>` → `timestamp=<ms> windows=<start>/<end>,...` */
    static void windowsFor(final Scenario scenario, final List<String> out) {
        scenario.accept("size", "advance");
        final TimeWindows windows = timeWindows(scenario);
        for (final String[] tokens : scenario.data("timestamp", 1)) {
            final long timestamp = Long.parseLong(tokens[1]);
            final List<String> bounds = new ArrayList<>();
            for (final TimeWindow window : windows.windowsFor(timestamp).values()) {
                bounds.add(window.start() + "/" + window.end());
            }
            emit(out, scenario, "timestamp=" + timestamp, "windows=" + String.join(",", bounds));
        }
    }

    /** `window <key> <start>` → `bytes=<hex> read=<Windowed.toString()>` */
    static void timeWindowedKey(final Scenario scenario, final List<String> out) {
        scenario.accept("size", "key-type");
        final long size = scenario.longParam("size");
        final Serde<Object> inner = keySerde(scenario);
        final TimeWindowedSerializer<Object> serializer = new TimeWindowedSerializer<>(inner.serializer());
        final TimeWindowedDeserializer<Object> deserializer = new TimeWindowedDeserializer<>(inner.deserializer(), size);
        for (final String[] tokens : scenario.data("window", 2)) {
            final long start = Long.parseLong(tokens[2]);
            long end;
            try {
                end = Math.addExact(start, size);
            } catch (final ArithmeticException overflow) {
                end = Long.MAX_VALUE;
            }
            final Windowed<Object> key = new Windowed<>(parseKey(scenario, tokens[1]), new TimeWindow(start, end));
            final byte[] bytes = serializer.serialize(TOPIC, key);
            emit(out, scenario, "bytes=" + hex(bytes), "read=" + deserializer.deserialize(TOPIC, bytes));
        }
    }

    /** `window <key> <start> <end>` → `bytes=<hex> read=<Windowed.toString()>` */
    static void sessionWindowedKey(final Scenario scenario, final List<String> out) {
        scenario.accept("key-type");
        final Serde<Object> inner = keySerde(scenario);
        final SessionWindowedSerializer<Object> serializer = new SessionWindowedSerializer<>(inner.serializer());
        final SessionWindowedDeserializer<Object> deserializer = new SessionWindowedDeserializer<>(inner.deserializer());
        for (final String[] tokens : scenario.data("window", 3)) {
            final SessionWindow window = new SessionWindow(Long.parseLong(tokens[2]), Long.parseLong(tokens[3]));
            final byte[] bytes = serializer.serialize(TOPIC, new Windowed<>(parseKey(scenario, tokens[1]), window));
            emit(out, scenario, "bytes=" + hex(bytes), "read=" + deserializer.deserialize(TOPIC, bytes));
        }
    }

    /** The driver's configuration: no broker is contacted; state lives in `stateDir`. */
    static Properties driverConfig(final Scenario scenario, final Path stateDir) {
        final Properties config = new Properties();
        config.put(StreamsConfig.APPLICATION_ID_CONFIG, "conformance-" + scenario.name());
        config.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
        config.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        return config;
    }

    static void deleteRecursively(final Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            for (final Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(path);
            }
        }
    }

    /**
     * The `emit` parameter: `update` (the default, EmitStrategy.onWindowUpdate()) or
     * `close` (EmitStrategy.onWindowClose()).
     */
    static EmitStrategy emitStrategy(final Scenario scenario) {
        return switch (scenario.param("emit", "update")) {
            case "update" -> EmitStrategy.onWindowUpdate();
            case "close" -> EmitStrategy.onWindowClose();
            default -> throw new IllegalArgumentException(scenario.where() + ": emit is update or close");
        };
    }

    /**
     * Pipes the steps of a timed scenario into `input`: records, and wall-clock advances
     * (which on-window-close emits depend on: Kafka looks for closed windows at most once
     * per second of wall-clock time).
     */
    static void pipeSteps(final Scenario scenario, final TopologyTestDriver driver, final TestInputTopic<String, String> input) {
        for (final String[] tokens : scenario.steps()) {
            if (tokens[0].equals("advance-wall-clock")) {
                driver.advanceWallClockTime(Duration.ofMillis(Long.parseLong(tokens[1])));
            } else {
                input.pipeInput(tokens[1], tokens[2], Long.parseLong(tokens[3]));
            }
        }
    }

    /** The records of `output` (time-windowed keys) as `output key=.. read=.. value=.. timestamp=..` lines. */
    static <V> void readWindowedOutput(final Scenario scenario, final TopologyTestDriver driver, final long size,
                                       final org.apache.kafka.common.serialization.Deserializer<V> values,
                                       final List<String> out) {
        final TestOutputTopic<byte[], V> output = driver.createOutputTopic("output", new ByteArrayDeserializer(), values);
        final TimeWindowedDeserializer<String> read = new TimeWindowedDeserializer<>(new StringDeserializer(), size);
        for (final TestRecord<byte[], V> record : output.readRecordsToList()) {
            emit(out, scenario, "output", "key=" + hex(record.key()), "read=" + read.deserialize("output", record.key()),
                "value=" + record.value(), "timestamp=" + record.timestamp());
        }
    }

    /**
     * groupByKey().windowedBy(TimeWindows).emitStrategy(..).count() (caching disabled:
     * every update goes downstream), written with the time-windowed serde.
     */
    static void windowedCount(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("size", "advance", "grace", "emit", "emit-interval");
        final long size = scenario.longParam("size");
        final StreamsBuilder builder = new StreamsBuilder();
        builder.stream("input", Consumed.with(Serdes.String(), Serdes.String()))
            .groupByKey()
            .windowedBy(timeWindows(scenario))
            .emitStrategy(emitStrategy(scenario))
            .count(org.apache.kafka.streams.kstream.Materialized
                .<String, Long, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                .withCachingDisabled())
            .toStream()
            .to("output", Produced.with(new WindowedSerdes.TimeWindowedSerde<>(Serdes.String(), size), Serdes.Long()));
        final Path stateDir = Files.createTempDirectory("conformance-");
        final Properties config = driverConfig(scenario, stateDir);
        if (scenario.params().containsKey("emit-interval")) {
            // The driver sets it to 0 unless configured.
            config.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION,
                scenario.longParam("emit-interval"));
        }
        try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), config)) {
            pipeSteps(scenario, driver, driver.createInputTopic("input", new StringSerializer(), new StringSerializer()));
            readWindowedOutput(scenario, driver, size, new LongDeserializer(), out);
        } finally {
            deleteRecursively(stateDir);
        }
    }

    /**
     * selectKey(the value up to its first `/`) → groupByKey (a repartition topic, which
     * the driver pipes through internally) → windowedBy(TimeWindows).emitStrategy(..)
     * .reduce(a + "," + b) (caching disabled), written with the time-windowed serde.
     */
    static void windowedReduceRekeyed(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("size", "advance", "grace", "emit");
        final long size = scenario.longParam("size");
        final StreamsBuilder builder = new StreamsBuilder();
        builder.stream("input", Consumed.with(Serdes.String(), Serdes.String()))
            .selectKey((key, value) -> value.substring(0, Math.max(0, value.indexOf('/'))))
            .groupByKey(org.apache.kafka.streams.kstream.Grouped.with(Serdes.String(), Serdes.String()))
            .windowedBy(timeWindows(scenario))
            .emitStrategy(emitStrategy(scenario))
            .reduce((aggregate, value) -> aggregate + "," + value,
                org.apache.kafka.streams.kstream.Materialized
                    .<String, String, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.String())
                    .withCachingDisabled())
            .toStream()
            .to("output", Produced.with(new WindowedSerdes.TimeWindowedSerde<>(Serdes.String(), size), Serdes.String()));
        final Path stateDir = Files.createTempDirectory("conformance-");
        try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), driverConfig(scenario, stateDir))) {
            pipeSteps(scenario, driver, driver.createInputTopic("input", new StringSerializer(), new StringSerializer()));
            readWindowedOutput(scenario, driver, size, new StringDeserializer(), out);
        } finally {
            deleteRecursively(stateDir);
        }
    }

    /**
     * `record <key> <value> <timestamp>` piped into `input` (String keys, Long values);
     * a processor forwards each record once per window of windowsFor(timestamp), keyed
     * by Windowed(key, window), and the sink writes `output` with the time-windowed
     * serde. → `output key=<hex> read=<Windowed.toString()> value=<v> timestamp=<ms>`
     */
    static void windowAssignment(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("size", "advance");
        final long size = scenario.longParam("size");
        final TimeWindows windows = timeWindows(scenario);
        final StreamsBuilder builder = new StreamsBuilder();
        builder.stream("input", Consumed.with(Serdes.String(), Serdes.Long()))
            .process(() -> new Processor<String, Long, Windowed<String>, Long>() {
                private ProcessorContext<Windowed<String>, Long> context;

                @Override
                public void init(final ProcessorContext<Windowed<String>, Long> context) {
                    this.context = context;
                }

                @Override
                public void process(final org.apache.kafka.streams.processor.api.Record<String, Long> record) {
                    for (final TimeWindow window : windows.windowsFor(record.timestamp()).values()) {
                        context.forward(record.withKey(new Windowed<>(record.key(), window)));
                    }
                }
            })
            .to("output", Produced.with(new WindowedSerdes.TimeWindowedSerde<>(Serdes.String(), size), Serdes.Long()));
        final Path stateDir = Files.createTempDirectory("conformance-");
        try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), driverConfig(scenario, stateDir))) {
            final TestInputTopic<String, Long> input =
                driver.createInputTopic("input", new StringSerializer(), new LongSerializer());
            final TestOutputTopic<byte[], Long> output =
                driver.createOutputTopic("output", new ByteArrayDeserializer(), new LongDeserializer());
            for (final String[] tokens : scenario.data("record", 3)) {
                input.pipeInput(tokens[1], Long.parseLong(tokens[2]), Long.parseLong(tokens[3]));
            }
            final TimeWindowedDeserializer<String> read = new TimeWindowedDeserializer<>(new StringDeserializer(), size);
            for (final TestRecord<byte[], Long> record : output.readRecordsToList()) {
                emit(out, scenario, "output", "key=" + hex(record.key()), "read=" + read.deserialize("output", record.key()),
                    "value=" + record.value(), "timestamp=" + record.timestamp());
            }
        } finally {
            deleteRecursively(stateDir);
        }
    }

    /**
     * groupByKey().windowedBy(SessionWindows).count() (caching disabled: every update and
     * every merged-away session's tombstone goes downstream), written with the
     * session-windowed serde. → `output key=<hex> read=<[key@start/end]> value=<v|null> timestamp=<ms>`
     */
    static void sessionCount(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("gap", "grace");
        final org.apache.kafka.streams.kstream.SessionWindows windows =
            org.apache.kafka.streams.kstream.SessionWindows.ofInactivityGapAndGrace(
                Duration.ofMillis(scenario.longParam("gap")), Duration.ofMillis(scenario.longParam("grace", 0)));
        final StreamsBuilder builder = new StreamsBuilder();
        builder.stream("input", Consumed.with(Serdes.String(), Serdes.String()))
            .groupByKey()
            .windowedBy(windows)
            .count(org.apache.kafka.streams.kstream.Materialized
                .<String, Long, org.apache.kafka.streams.state.SessionStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                .withCachingDisabled())
            .toStream()
            .to("output", Produced.with(new WindowedSerdes.SessionWindowedSerde<>(Serdes.String()), Serdes.Long()));
        final Path stateDir = Files.createTempDirectory("conformance-");
        try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), driverConfig(scenario, stateDir))) {
            final TestInputTopic<String, String> input =
                driver.createInputTopic("input", new StringSerializer(), new StringSerializer());
            final TestOutputTopic<byte[], Long> output =
                driver.createOutputTopic("output", new ByteArrayDeserializer(), new LongDeserializer());
            for (final String[] tokens : scenario.data("record", 3)) {
                input.pipeInput(tokens[1], tokens[2], Long.parseLong(tokens[3]));
            }
            final SessionWindowedDeserializer<String> read = new SessionWindowedDeserializer<>(new StringDeserializer());
            for (final TestRecord<byte[], Long> record : output.readRecordsToList()) {
                // A merged-away session's tombstone has a null value: printed as `value=null`.
                emit(out, scenario, "output", "key=" + hex(record.key()), "read=" + read.deserialize("output", record.key()),
                    "value=" + record.value(), "timestamp=" + record.timestamp());
            }
        } finally {
            deleteRecursively(stateDir);
        }
    }

    /**
     * groupByKey().windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(difference, grace))
     * .count() (caching disabled: every update goes downstream), written with the
     * time-windowed serde of window size = the time difference, as Kafka writes sliding
     * results. → `output key=<hex> read=<[key@start/end]> value=<count> timestamp=<ms>`
     */
    static void slidingCount(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("difference", "grace");
        final long difference = scenario.longParam("difference");
        final org.apache.kafka.streams.kstream.SlidingWindows windows =
            org.apache.kafka.streams.kstream.SlidingWindows.ofTimeDifferenceAndGrace(
                Duration.ofMillis(difference), Duration.ofMillis(scenario.longParam("grace", 0)));
        final StreamsBuilder builder = new StreamsBuilder();
        builder.stream("input", Consumed.with(Serdes.String(), Serdes.String()))
            .groupByKey()
            .windowedBy(windows)
            .count(org.apache.kafka.streams.kstream.Materialized
                .<String, Long, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                .withCachingDisabled())
            .toStream()
            .to("output", Produced.with(new WindowedSerdes.TimeWindowedSerde<>(Serdes.String(), difference), Serdes.Long()));
        final Path stateDir = Files.createTempDirectory("conformance-");
        try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), driverConfig(scenario, stateDir))) {
            pipeSteps(scenario, driver, driver.createInputTopic("input", new StringSerializer(), new StringSerializer()));
            readWindowedOutput(scenario, driver, difference, new LongDeserializer(), out);
        } finally {
            deleteRecursively(stateDir);
        }
    }
    /**
     * `record <key> <value|null> <timestamp>` piped into the table `input`; groupBy(the
     * value up to its `/` → key=rest) then count() or a concatenating aggregate() with a
     * subtractor (`aggregate=count|concat`, caching disabled), written to `output` →
     * `output key=<k> value=<v|null> timestamp=<ms>`
     */
    static void tableGroupBy(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("aggregate");
        final StreamsBuilder builder = new StreamsBuilder();
        final org.apache.kafka.streams.kstream.KGroupedTable<String, String> grouped = builder
            .table("input", Consumed.with(Serdes.String(), Serdes.String()))
            .groupBy((key, value) -> org.apache.kafka.streams.KeyValue.pair(
                    value.substring(0, Math.max(0, value.indexOf('/'))),
                    key + "=" + value.substring(value.indexOf('/') + 1)),
                org.apache.kafka.streams.kstream.Grouped.with(Serdes.String(), Serdes.String()));
        final String aggregate = scenario.param("aggregate", "count");
        switch (aggregate) {
            case "count" -> grouped
                .count(org.apache.kafka.streams.kstream.Materialized
                    .<String, Long, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                    .withCachingDisabled())
                .toStream()
                .to("output", Produced.with(Serdes.String(), Serdes.Long()));
            case "concat" -> grouped
                .aggregate(
                    () -> "",
                    (key, value, agg) -> agg.isEmpty() ? value : agg + "," + value,
                    (key, value, agg) -> String.join(",",
                        Stream.of(agg.split(",")).filter(part -> !part.equals(value)).toList()),
                    org.apache.kafka.streams.kstream.Materialized
                        .<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.String())
                        .withCachingDisabled())
                .toStream()
                .to("output", Produced.with(Serdes.String(), Serdes.String()));
            default -> throw new IllegalArgumentException(scenario.where() + ": aggregate is count or concat");
        }
        final Path stateDir = Files.createTempDirectory("conformance-");
        try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), driverConfig(scenario, stateDir))) {
            final TestInputTopic<String, String> input =
                driver.createInputTopic("input", new StringSerializer(), new StringSerializer());
            for (final String[] tokens : scenario.data()) {
                if (!tokens[0].equals("record") || tokens.length != 4) {
                    throw new IllegalArgumentException(scenario.where() + ": expected `record <key> <value|null> <timestamp>`");
                }
                input.pipeInput(tokens[1], tokens[2].equals("null") ? null : tokens[2], Long.parseLong(tokens[3]));
            }
            final org.apache.kafka.common.serialization.Deserializer<?> values =
                aggregate.equals("count") ? new LongDeserializer() : new StringDeserializer();
            final TestOutputTopic<String, ?> output = driver.createOutputTopic("output", new StringDeserializer(), values);
            for (final TestRecord<String, ?> record : output.readRecordsToList()) {
                emit(out, scenario, "output", "key=" + record.key(), "value=" + record.value(),
                    "timestamp=" + record.timestamp());
            }
        } finally {
            deleteRecursively(stateDir);
        }
    }

    /**
     * A stream-stream join of `left` and `right` (String keys and values):
     * `join` (inner, left or outer) within JoinWindows.ofTimeDifferenceAndGrace(before,
     * grace).after(after), the joiner `<left>+<right>` (`null` for a missing side), or
     * with `self=true` the stream `left` joined with itself (no `right` lines); with
     * `rekey=true` the left stream re-keyed by its value up to the first `/`. Data lines
     * `left|right <key> <value> <timestamp>` and `advance-wall-clock <ms>`.
     * → `output key=<k> value=<v> timestamp=<ms>`
     */
    static void streamJoin(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("join", "before", "after", "grace", "self", "rekey", "emit-interval");
        final long before = scenario.longParam("before");
        final org.apache.kafka.streams.kstream.JoinWindows windows = org.apache.kafka.streams.kstream.JoinWindows
            .ofTimeDifferenceAndGrace(Duration.ofMillis(before), Duration.ofMillis(scenario.longParam("grace", 0)))
            .after(Duration.ofMillis(scenario.longParam("after", before)));
        final boolean self = scenario.param("self", "false").equals("true");
        final StreamsBuilder builder = new StreamsBuilder();
        final org.apache.kafka.streams.kstream.KStream<String, String> read =
            builder.stream("left", Consumed.with(Serdes.String(), Serdes.String()));
        // rekey=true: the left stream keyed by its value up to the first `/` (a
        // repartition topic before the join, piped through inside the driver).
        final org.apache.kafka.streams.kstream.KStream<String, String> left = scenario.param("rekey", "false").equals("true")
            ? read.selectKey((key, value) -> value.substring(0, Math.max(0, value.indexOf('/'))))
            : read;
        final org.apache.kafka.streams.kstream.KStream<String, String> right =
            self ? left : builder.stream("right", Consumed.with(Serdes.String(), Serdes.String()));
        final org.apache.kafka.streams.kstream.ValueJoiner<String, String, String> joiner = (l, r) -> l + "+" + r;
        final org.apache.kafka.streams.kstream.StreamJoined<String, String, String> joined =
            org.apache.kafka.streams.kstream.StreamJoined.with(Serdes.String(), Serdes.String(), Serdes.String());
        final org.apache.kafka.streams.kstream.KStream<String, String> result = switch (scenario.param("join", "inner")) {
            case "inner" -> left.join(right, joiner, windows, joined);
            case "left" -> left.leftJoin(right, joiner, windows, joined);
            case "outer" -> left.outerJoin(right, joiner, windows, joined);
            default -> throw new IllegalArgumentException(scenario.where() + ": join is inner, left or outer");
        };
        result.to("output", Produced.with(Serdes.String(), Serdes.String()));
        final Path stateDir = Files.createTempDirectory("conformance-");
        final Properties config = driverConfig(scenario, stateDir);
        if (scenario.params().containsKey("emit-interval")) {
            // The driver sets it to 0 unless configured.
            config.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX,
                scenario.longParam("emit-interval"));
        }
        try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), config)) {
            final TestInputTopic<String, String> leftInput =
                driver.createInputTopic("left", new StringSerializer(), new StringSerializer());
            final TestInputTopic<String, String> rightInput =
                self ? null : driver.createInputTopic("right", new StringSerializer(), new StringSerializer());
            for (final String[] tokens : scenario.data) {
                final boolean record = (tokens[0].equals("left") || tokens[0].equals("right") && !self) && tokens.length == 4;
                if (tokens[0].equals("advance-wall-clock") && tokens.length == 2) {
                    driver.advanceWallClockTime(Duration.ofMillis(Long.parseLong(tokens[1])));
                } else if (record) {
                    (tokens[0].equals("left") ? leftInput : rightInput).pipeInput(tokens[1], tokens[2], Long.parseLong(tokens[3]));
                } else {
                    throw new IllegalArgumentException(scenario.where() + ": kind " + scenario.kind()
                        + " takes data lines `left|right <key> <value> <timestamp>` (only `left` with self=true)"
                        + " or `advance-wall-clock <ms>`, got `" + String.join(" ", tokens) + "`");
                }
            }
            final TestOutputTopic<String, String> output =
                driver.createOutputTopic("output", new StringDeserializer(), new StringDeserializer());
            for (final TestRecord<String, String> r : output.readRecordsToList()) {
                emit(out, scenario, "output", "key=" + r.key(), "value=" + r.value(), "timestamp=" + r.timestamp());
            }
        } finally {
            deleteRecursively(stateDir);
        }
    }
}
