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
                case "windowed-count-suppressed" -> windowedCountSuppressed(scenario, out);
                case "session-count-suppressed" -> sessionCount(scenario, out);
                case "sliding-count-suppressed" -> slidingCount(scenario, out);
                case "table-suppress-time-limit" -> tableSuppressTimeLimit(scenario, out);
                case "cogrouped-windowed-aggregate" -> cogroupedWindowedAggregate(scenario, out);
                case "windowed-aggregate" -> windowedAggregate(scenario, out);
                case "table-group-by" -> tableGroupBy(scenario, out);
                case "stream-join" -> streamJoin(scenario, out);
                case "stream-table-join" -> streamTableJoin(scenario, out);
                case "stream-global-join" -> streamGlobalJoin(scenario, out);
                case "table-table-join" -> tableTableJoin(scenario, out);
                case "fk-join" -> foreignKeyJoin(scenario, out);
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
    /**
     * The `caching` parameter on a windowed store's Materialized: `off` (the default:
     * every update goes downstream) or `on` (Kafka's default: the record cache folds
     * updates until the driver's commit after each input record).
     */
    static <V, S extends org.apache.kafka.streams.processor.StateStore> org.apache.kafka.streams.kstream.Materialized<String, V, S> caching(
            final Scenario scenario, final org.apache.kafka.streams.kstream.Materialized<String, V, S> materialized) {
        return switch (scenario.param("caching", "off")) {
            case "on" -> materialized.withCachingEnabled();
            case "off" -> materialized.withCachingDisabled();
            default -> throw new IllegalArgumentException(scenario.where() + ": caching is on or off");
        };
    }

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
        scenario.accept("size", "advance", "grace", "emit", "emit-interval", "caching");
        final long size = scenario.longParam("size");
        final StreamsBuilder builder = new StreamsBuilder();
        builder.stream("input", Consumed.with(Serdes.String(), Serdes.String()))
            .groupByKey()
            .windowedBy(timeWindows(scenario))
            .emitStrategy(emitStrategy(scenario))
            .count(caching(scenario, org.apache.kafka.streams.kstream.Materialized
                .<String, Long, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.Long())))
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
        scenario.accept("size", "advance", "grace", "emit", "caching");
        final long size = scenario.longParam("size");
        final StreamsBuilder builder = new StreamsBuilder();
        builder.stream("input", Consumed.with(Serdes.String(), Serdes.String()))
            .selectKey((key, value) -> value.substring(0, Math.max(0, value.indexOf('/'))))
            .groupByKey(org.apache.kafka.streams.kstream.Grouped.with(Serdes.String(), Serdes.String()))
            .windowedBy(timeWindows(scenario))
            .emitStrategy(emitStrategy(scenario))
            .reduce((aggregate, value) -> aggregate + "," + value,
                caching(scenario, org.apache.kafka.streams.kstream.Materialized
                    .<String, String, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.String())))
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
     * Kind `session-count-suppressed`: .suppress(Suppressed.untilWindowCloses(BufferConfig.unbounded()))
     * after the count.
     */
    static void sessionCount(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("gap", "grace", "caching", "emit");
        final org.apache.kafka.streams.kstream.SessionWindows windows =
            org.apache.kafka.streams.kstream.SessionWindows.ofInactivityGapAndGrace(
                Duration.ofMillis(scenario.longParam("gap")), Duration.ofMillis(scenario.longParam("grace", 0)));
        final StreamsBuilder builder = new StreamsBuilder();
        org.apache.kafka.streams.kstream.KTable<Windowed<String>, Long> counts =
            builder.stream("input", Consumed.with(Serdes.String(), Serdes.String()))
                .groupByKey()
                .windowedBy(windows)
                .emitStrategy(emitStrategy(scenario))
                .count(caching(scenario, org.apache.kafka.streams.kstream.Materialized
                    .<String, Long, org.apache.kafka.streams.state.SessionStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.Long())));
        if (scenario.kind().equals("session-count-suppressed")) {
            counts = counts.suppress(org.apache.kafka.streams.kstream.Suppressed.untilWindowCloses(
                org.apache.kafka.streams.kstream.Suppressed.BufferConfig.unbounded()));
        }
        counts.toStream()
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
            readSessionOutput(scenario, output, out);
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
    // Kind `sliding-count-suppressed`: .suppress(Suppressed.untilWindowCloses(BufferConfig.unbounded()))
    // after the count.
    static void slidingCount(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("difference", "grace", "caching", "emit");
        final long difference = scenario.longParam("difference");
        final org.apache.kafka.streams.kstream.SlidingWindows windows =
            org.apache.kafka.streams.kstream.SlidingWindows.ofTimeDifferenceAndGrace(
                Duration.ofMillis(difference), Duration.ofMillis(scenario.longParam("grace", 0)));
        final StreamsBuilder builder = new StreamsBuilder();
        org.apache.kafka.streams.kstream.KTable<Windowed<String>, Long> counts =
            builder.stream("input", Consumed.with(Serdes.String(), Serdes.String()))
                .groupByKey()
                .windowedBy(windows)
                .emitStrategy(emitStrategy(scenario))
                .count(caching(scenario, org.apache.kafka.streams.kstream.Materialized
                    .<String, Long, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.Long())));
        if (scenario.kind().equals("sliding-count-suppressed")) {
            counts = counts.suppress(org.apache.kafka.streams.kstream.Suppressed.untilWindowCloses(
                org.apache.kafka.streams.kstream.Suppressed.BufferConfig.unbounded()));
        }
        counts.toStream()
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
     * Two grouped streams cogrouped (`input-a` and `input-b`, string keys and values):
     * a's aggregator appends `+value`, b's `-value`, from the initializer `0`, windowed
     * by `windows` (`time`: size, advance, grace; `sliding`: difference, grace;
     * `session`: gap, grace, sessions merged as `left|right`), with `caching`. Data:
     * `record <a|b> <key> <value> <timestamp>`.
     * → `output key=<hex> read=<[key@start/end]> value=<aggregate|null> timestamp=<ms>`
     */
    static void cogroupedWindowedAggregate(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("windows", "size", "advance", "difference", "gap", "grace", "caching");
        final StreamsBuilder builder = new StreamsBuilder();
        final org.apache.kafka.streams.kstream.KGroupedStream<String, String> a =
            builder.stream("input-a", Consumed.with(Serdes.String(), Serdes.String())).groupByKey();
        final org.apache.kafka.streams.kstream.KGroupedStream<String, String> b =
            builder.stream("input-b", Consumed.with(Serdes.String(), Serdes.String())).groupByKey();
        final org.apache.kafka.streams.kstream.CogroupedKStream<String, String> cogrouped = a
            .<String>cogroup((key, value, aggregate) -> aggregate + "+" + value)
            .cogroup(b, (key, value, aggregate) -> aggregate + "-" + value);
        final org.apache.kafka.streams.kstream.Initializer<String> initializer = () -> "0";
        final long grace = scenario.longParam("grace", 0);
        final org.apache.kafka.streams.kstream.KTable<Windowed<String>, String> table;
        final Serde<Windowed<String>> keySerde;
        final org.apache.kafka.common.serialization.Deserializer<Windowed<String>> read;
        switch (scenario.param("windows", "time")) {
            case "time" -> {
                final long size = scenario.longParam("size");
                table = cogrouped.windowedBy(timeWindows(scenario)).aggregate(initializer,
                    caching(scenario, org.apache.kafka.streams.kstream.Materialized
                        .<String, String, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.String())));
                keySerde = new WindowedSerdes.TimeWindowedSerde<>(Serdes.String(), size);
                read = new TimeWindowedDeserializer<>(new StringDeserializer(), size);
            }
            case "sliding" -> {
                final long difference = scenario.longParam("difference");
                table = cogrouped.windowedBy(org.apache.kafka.streams.kstream.SlidingWindows.ofTimeDifferenceAndGrace(
                        Duration.ofMillis(difference), Duration.ofMillis(grace)))
                    .aggregate(initializer,
                        caching(scenario, org.apache.kafka.streams.kstream.Materialized
                            .<String, String, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.String())));
                keySerde = new WindowedSerdes.TimeWindowedSerde<>(Serdes.String(), difference);
                read = new TimeWindowedDeserializer<>(new StringDeserializer(), difference);
            }
            case "session" -> {
                table = cogrouped.windowedBy(org.apache.kafka.streams.kstream.SessionWindows.ofInactivityGapAndGrace(
                        Duration.ofMillis(scenario.longParam("gap")), Duration.ofMillis(grace)))
                    .aggregate(initializer, (key, left, right) -> left + "|" + right,
                        caching(scenario, org.apache.kafka.streams.kstream.Materialized
                            .<String, String, org.apache.kafka.streams.state.SessionStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.String())));
                keySerde = new WindowedSerdes.SessionWindowedSerde<>(Serdes.String());
                read = new SessionWindowedDeserializer<>(new StringDeserializer());
            }
            default -> throw new IllegalArgumentException(scenario.where() + ": windows is time, sliding or session");
        }
        table.toStream().to("output", Produced.with(keySerde, Serdes.String()));
        final Path stateDir = Files.createTempDirectory("conformance-");
        try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), driverConfig(scenario, stateDir))) {
            final Map<String, TestInputTopic<String, String>> inputs = Map.of(
                "a", driver.createInputTopic("input-a", new StringSerializer(), new StringSerializer()),
                "b", driver.createInputTopic("input-b", new StringSerializer(), new StringSerializer()));
            for (final String[] tokens : scenario.data("record", 4)) {
                final TestInputTopic<String, String> input = inputs.get(tokens[1]);
                if (input == null) {
                    throw new IllegalArgumentException(scenario.where() + ": records go to a or b");
                }
                input.pipeInput(tokens[2], tokens[3], Long.parseLong(tokens[4]));
            }
            final TestOutputTopic<byte[], String> output =
                driver.createOutputTopic("output", new ByteArrayDeserializer(), new StringDeserializer());
            for (final TestRecord<byte[], String> record : output.readRecordsToList()) {
                emit(out, scenario, "output", "key=" + hex(record.key()), "read=" + read.deserialize("output", record.key()),
                    "value=" + record.value(), "timestamp=" + record.timestamp());
            }
        } finally {
            deleteRecursively(stateDir);
        }
    }

    /**
     * groupByKey().windowedBy(TimeWindows).emitStrategy(..).aggregate(() -> "init",
     * (key, value, aggregate) -> aggregate + "," + value), with `caching`, written with
     * the time-windowed serde.
     */
    static void windowedAggregate(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("size", "advance", "grace", "emit", "caching");
        final long size = scenario.longParam("size");
        final StreamsBuilder builder = new StreamsBuilder();
        builder.stream("input", Consumed.with(Serdes.String(), Serdes.String()))
            .groupByKey()
            .windowedBy(timeWindows(scenario))
            .emitStrategy(emitStrategy(scenario))
            .aggregate(() -> "init", (key, value, aggregate) -> aggregate + "," + value,
                caching(scenario, org.apache.kafka.streams.kstream.Materialized
                    .<String, String, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.String())))
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

    /** The topology's description as `describe <line>` lines (blank lines left out). */
    static void describe(final Scenario scenario, final org.apache.kafka.streams.Topology topology, final List<String> out) {
        for (final String line : topology.describe().toString().split("\n")) {
            if (!line.isBlank()) {
                emit(out, scenario, "describe", line.stripTrailing());
            }
        }
    }

    /**
     * groupByKey().windowedBy(TimeWindows).count() (caching disabled) .suppress(
     * Suppressed.untilWindowCloses(BufferConfig.unbounded()), named `name` if given),
     * written with the time-windowed serde → the topology's `describe` lines, then
     * `output key=<hex> read=<[key@start/end]> value=<count> timestamp=<ms>`
     */
    static void windowedCountSuppressed(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("size", "advance", "grace", "name");
        final long size = scenario.longParam("size");
        org.apache.kafka.streams.kstream.Suppressed<Windowed<?>> suppressed =
            org.apache.kafka.streams.kstream.Suppressed.untilWindowCloses(
                org.apache.kafka.streams.kstream.Suppressed.BufferConfig.unbounded());
        if (scenario.params().containsKey("name")) {
            suppressed = suppressed.withName(scenario.params().get("name"));
        }
        final StreamsBuilder builder = new StreamsBuilder();
        builder.stream("input", Consumed.with(Serdes.String(), Serdes.String()))
            .groupByKey()
            .windowedBy(timeWindows(scenario))
            .count(org.apache.kafka.streams.kstream.Materialized
                .<String, Long, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                .withCachingDisabled())
            .suppress(suppressed)
            .toStream()
            .to("output", Produced.with(new WindowedSerdes.TimeWindowedSerde<>(Serdes.String(), size), Serdes.Long()));
        final org.apache.kafka.streams.Topology topology = builder.build();
        describe(scenario, topology, out);
        final Path stateDir = Files.createTempDirectory("conformance-");
        try (TopologyTestDriver driver = new TopologyTestDriver(topology, driverConfig(scenario, stateDir))) {
            pipeSteps(scenario, driver, driver.createInputTopic("input", new StringSerializer(), new StringSerializer()));
            readWindowedOutput(scenario, driver, size, new LongDeserializer(), out);
        } finally {
            deleteRecursively(stateDir);
        }
    }

    /**
     * The records of `output` (session-windowed keys) as `output key=.. read=.. value=..
     * timestamp=..` lines; a merged-away session's tombstone has a null value, printed as
     * `value=null`.
     */
    static void readSessionOutput(final Scenario scenario, final TestOutputTopic<byte[], Long> output, final List<String> out) {
        final SessionWindowedDeserializer<String> read = new SessionWindowedDeserializer<>(new StringDeserializer());
        for (final TestRecord<byte[], Long> record : output.readRecordsToList()) {
            emit(out, scenario, "output", "key=" + hex(record.key()), "read=" + read.deserialize("output", record.key()),
                "value=" + record.value(), "timestamp=" + record.timestamp());
        }
    }

    /**
     * builder.table("input") (String keys and values, store `input-table`, caching
     * disabled) .suppress(Suppressed.untilTimeLimit(limit, buffer)) .toStream()
     * .to("output"), where the buffer is `BufferConfig.unbounded()`, or bounded by
     * `max-records` / `max-bytes` and `full=emit` (emitEarlyWhenFull, the default) or
     * `full=shutdown` (shutDownWhenFull). `record <key> <value> <timestamp>`, value `-`
     * for a tombstone. → `output key=<k> value=<v or null> timestamp=<ms>`, and
     * `failed buffer-full` when the buffer is full and shuts down (processing stops).
     */
    static void tableSuppressTimeLimit(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("limit", "max-records", "max-bytes", "full");
        org.apache.kafka.streams.kstream.Suppressed.BufferConfig<?> buffer;
        if (scenario.params().containsKey("max-records") || scenario.params().containsKey("max-bytes")) {
            org.apache.kafka.streams.kstream.Suppressed.EagerBufferConfig eager =
                org.apache.kafka.streams.kstream.Suppressed.BufferConfig.maxRecords(scenario.longParam("max-records", Long.MAX_VALUE));
            eager = eager.withMaxBytes(scenario.longParam("max-bytes", Long.MAX_VALUE));
            buffer = switch (scenario.param("full", "emit")) {
                case "emit" -> eager;
                case "shutdown" -> eager.shutDownWhenFull();
                default -> throw new IllegalArgumentException(scenario.where() + ": full is emit or shutdown");
            };
        } else {
            buffer = org.apache.kafka.streams.kstream.Suppressed.BufferConfig.unbounded();
        }
        final StreamsBuilder builder = new StreamsBuilder();
        builder.table("input", Consumed.with(Serdes.String(), Serdes.String()),
                org.apache.kafka.streams.kstream.Materialized
                    .<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("input-table")
                    .withCachingDisabled())
            .suppress(org.apache.kafka.streams.kstream.Suppressed.untilTimeLimit(
                Duration.ofMillis(scenario.longParam("limit")), buffer))
            .toStream()
            .to("output", Produced.with(Serdes.String(), Serdes.String()));
        final Path stateDir = Files.createTempDirectory("conformance-");
        try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), driverConfig(scenario, stateDir))) {
            final TestInputTopic<String, String> input =
                driver.createInputTopic("input", new StringSerializer(), new StringSerializer());
            final TestOutputTopic<String, String> output =
                driver.createOutputTopic("output", new StringDeserializer(), new StringDeserializer());
            boolean failed = false;
            for (final String[] tokens : scenario.data("record", 3)) {
                try {
                    input.pipeInput(tokens[1], tokens[2].equals("-") ? null : tokens[2], Long.parseLong(tokens[3]));
                } catch (final RuntimeException e) {
                    Throwable cause = e;
                    while (cause != null && (cause.getMessage() == null || !cause.getMessage().contains("buffer exceeded its max capacity"))) {
                        cause = cause.getCause();
                    }
                    if (cause == null) {
                        throw e;
                    }
                    failed = true;
                    break;
                }
            }
            for (final TestRecord<String, String> record : output.readRecordsToList()) {
                emit(out, scenario, "output", "key=" + record.key(), "value=" + record.value(), "timestamp=" + record.timestamp());
            }
            if (failed) {
                emit(out, scenario, "failed", "buffer-full");
            }
        } finally {
            deleteRecursively(stateDir);
        }
    }

    /** A value token: `null` is a null value (a tombstone). */
    static String nullable(final String token) {
        return token.equals("null") ? null : token;
    }

    /**
     * Pipes `<topic> <key> <value|null> <timestamp>` lines into the input topics named by
     * their first token (one of `topics`), in file order.
     */
    static void pipeTopics(final Scenario scenario, final TopologyTestDriver driver, final String... topics) {
        final Map<String, TestInputTopic<String, String>> inputs = new LinkedHashMap<>();
        for (final String topic : topics) {
            inputs.put(topic, driver.createInputTopic(topic, new StringSerializer(), new StringSerializer()));
        }
        for (final String[] tokens : scenario.data()) {
            final TestInputTopic<String, String> input = inputs.get(tokens[0]);
            if (input == null || tokens.length != 4) {
                throw new IllegalArgumentException(scenario.where() + ": kind " + scenario.kind() + " takes data lines `<"
                    + String.join("|", topics) + "> <key> <value|null> <timestamp>`, got `" + String.join(" ", tokens) + "`");
            }
            input.pipeInput(tokens[1], nullable(tokens[2]), Long.parseLong(tokens[3]));
        }
    }

    /** The records of `output` (string keys and values) as `output key=.. value=.. timestamp=..` lines. */
    static void readOutput(final Scenario scenario, final TopologyTestDriver driver, final List<String> out) {
        final TestOutputTopic<String, String> output =
            driver.createOutputTopic("output", new StringDeserializer(), new StringDeserializer());
        for (final TestRecord<String, String> record : output.readRecordsToList()) {
            emit(out, scenario, "output", "key=" + record.key(), "value=" + record.value(), "timestamp=" + record.timestamp());
        }
    }

    /** Builds the topology, pipes the scenario's lines into `topics` and prints `output`'s records. */
    static void runTopics(final Scenario scenario, final StreamsBuilder builder, final List<String> out, final String... topics)
        throws IOException {
        final Path stateDir = Files.createTempDirectory("conformance-");
        try (TopologyTestDriver driver = new TopologyTestDriver(builder.build(), driverConfig(scenario, stateDir))) {
            pipeTopics(scenario, driver, topics);
            readOutput(scenario, driver, out);
        } finally {
            deleteRecursively(stateDir);
        }
    }

    /** A key-value store `name` of string keys and values. */
    static org.apache.kafka.streams.kstream.Materialized<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>> stringStore(final String name) {
        return org.apache.kafka.streams.kstream.Materialized
            .<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as(name)
            .withKeySerde(Serdes.String())
            .withValueSerde(Serdes.String());
    }

    static boolean leftJoin(final Scenario scenario) {
        return switch (scenario.param("join", "inner")) {
            case "inner" -> false;
            case "left" -> true;
            default -> throw new IllegalArgumentException(scenario.where() + ": join is inner or left");
        };
    }

    /** The stream value up to its first `/` (the rekeying and global-table key selector). */
    static String prefix(final String value) {
        return value.substring(0, Math.max(0, value.indexOf('/')));
    }

    /**
     * builder.stream("stream").join / leftJoin(builder.table("table"), v + "+" + t)
     * (with `rekey=true`, after selectKey(prefix of the value), so through a repartition
     * topic), written to `output`.
     */
    static void streamTableJoin(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("join", "rekey");
        final StreamsBuilder builder = new StreamsBuilder();
        final org.apache.kafka.streams.kstream.KTable<String, String> table =
            builder.table("table", Consumed.with(Serdes.String(), Serdes.String()));
        org.apache.kafka.streams.kstream.KStream<String, String> stream =
            builder.stream("stream", Consumed.with(Serdes.String(), Serdes.String()));
        if (Boolean.parseBoolean(scenario.param("rekey", "false"))) {
            stream = stream.selectKey((key, value) -> prefix(value));
        }
        final org.apache.kafka.streams.kstream.Joined<String, String, String> joined =
            org.apache.kafka.streams.kstream.Joined.with(Serdes.String(), Serdes.String(), Serdes.String());
        final org.apache.kafka.streams.kstream.KStream<String, String> result = leftJoin(scenario)
            ? stream.leftJoin(table, (value, row) -> value + "+" + row, joined)
            : stream.join(table, (value, row) -> value + "+" + row, joined);
        result.to("output", Produced.with(Serdes.String(), Serdes.String()));
        runTopics(scenario, builder, out, "stream", "table");
    }

    /**
     * builder.stream("stream").join / leftJoin(builder.globalTable("global"), key: the
     * value's prefix, v + "+" + row), written to `output`.
     */
    static void streamGlobalJoin(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("join");
        final StreamsBuilder builder = new StreamsBuilder();
        final org.apache.kafka.streams.kstream.GlobalKTable<String, String> global =
            builder.globalTable("global", Consumed.with(Serdes.String(), Serdes.String()));
        final org.apache.kafka.streams.kstream.KStream<String, String> stream =
            builder.stream("stream", Consumed.with(Serdes.String(), Serdes.String()));
        final org.apache.kafka.streams.kstream.KStream<String, String> result = leftJoin(scenario)
            ? stream.leftJoin(global, (key, value) -> prefix(value), (value, row) -> value + "+" + row)
            : stream.join(global, (key, value) -> prefix(value), (value, row) -> value + "+" + row);
        result.to("output", Produced.with(Serdes.String(), Serdes.String()));
        runTopics(scenario, builder, out, "stream", "global");
    }

    /**
     * builder.table("left").join / leftJoin / outerJoin(builder.table("right"),
     * l + "+" + r) (materialized or not), toStream() to `output` (a deleted result is a
     * null value).
     */
    static void tableTableJoin(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("join", "materialized", "count-by-right");
        final StreamsBuilder builder = new StreamsBuilder();
        final org.apache.kafka.streams.kstream.KTable<String, String> left =
            builder.table("left", Consumed.with(Serdes.String(), Serdes.String()));
        final org.apache.kafka.streams.kstream.KTable<String, String> right =
            builder.table("right", Consumed.with(Serdes.String(), Serdes.String()));
        final org.apache.kafka.streams.kstream.ValueJoiner<String, String, String> joiner = (l, r) -> l + "+" + r;
        final boolean materialized = Boolean.parseBoolean(scenario.param("materialized", "false"));
        final org.apache.kafka.streams.kstream.Materialized<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>> store =
            stringStore("joined");
        final org.apache.kafka.streams.kstream.KTable<String, String> joined = switch (scenario.param("join", "inner")) {
            case "inner" -> materialized ? left.join(right, joiner, store) : left.join(right, joiner);
            case "left" -> materialized ? left.leftJoin(right, joiner, store) : left.leftJoin(right, joiner);
            case "outer" -> materialized ? left.outerJoin(right, joiner, store) : left.outerJoin(right, joiner);
            default -> throw new IllegalArgumentException(scenario.where() + ": join is inner, left or outer");
        };
        if (Boolean.parseBoolean(scenario.param("count-by-right", "false"))) {
            // Results per right value: a result that changes or goes away is subtracted
            // from its old group (the join's old values).
            joined.groupBy((key, value) -> org.apache.kafka.streams.KeyValue.pair(value.substring(value.indexOf('+') + 1), value),
                    org.apache.kafka.streams.kstream.Grouped.with(Serdes.String(), Serdes.String()))
                .count()
                .toStream()
                .mapValues(count -> String.valueOf(count))
                .to("output", Produced.with(Serdes.String(), Serdes.String()));
        } else {
            joined.toStream().to("output", Produced.with(Serdes.String(), Serdes.String()));
        }
        runTopics(scenario, builder, out, "left", "right");
    }

    /**
     * builder.table("left").join / leftJoin(builder.table("right"), the value's prefix,
     * l + "+" + r) (materialized or not), toStream() to `output`.
     */
    static void foreignKeyJoin(final Scenario scenario, final List<String> out) throws IOException {
        scenario.accept("join", "materialized");
        final StreamsBuilder builder = new StreamsBuilder();
        final org.apache.kafka.streams.kstream.KTable<String, String> left =
            builder.table("left", Consumed.with(Serdes.String(), Serdes.String()));
        final org.apache.kafka.streams.kstream.KTable<String, String> right =
            builder.table("right", Consumed.with(Serdes.String(), Serdes.String()));
        final java.util.function.Function<String, String> foreignKey = Harness::prefix;
        final org.apache.kafka.streams.kstream.ValueJoiner<String, String, String> joiner = (l, r) -> l + "+" + r;
        final boolean materialized = Boolean.parseBoolean(scenario.param("materialized", "false"));
        final org.apache.kafka.streams.kstream.Materialized<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>> store =
            stringStore("fk-joined");
        final org.apache.kafka.streams.kstream.KTable<String, String> joined = switch (scenario.param("join", "inner")) {
            case "inner" -> materialized ? left.join(right, foreignKey, joiner, store) : left.join(right, foreignKey, joiner);
            case "left" -> materialized ? left.leftJoin(right, foreignKey, joiner, store) : left.leftJoin(right, foreignKey, joiner);
            default -> throw new IllegalArgumentException(scenario.where() + ": join is inner or left");
        };
        joined.toStream().to("output", Produced.with(Serdes.String(), Serdes.String()));
        runTopics(scenario, builder, out, "left", "right");
    }
}
