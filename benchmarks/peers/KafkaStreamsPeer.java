// The Kafka Streams side of the peer benchmark (benchmarks/src/bin/peers.rs), run as a
// single-file program on the jars scripts/setup.sh fetched:
//   java -cp "$KAFKA_STREAMS_JARS/*" benchmarks/peers/KafkaStreamsPeer.java \
//       WORKLOAD BOOTSTRAP INPUT OUTPUT APPLICATION_ID STATE_DIR COMMIT_INTERVAL_MS GRACE_MS TABLE
// WORKLOAD is stateless, word-count, tumbling-count or stream-table-join (TABLE is the
// sensor -> plant table's topic, read by the join only); the topologies are the same as
// the other engines' (see peers.rs). Settings fixed for every engine: at-least-once,
// the commit interval, one stream thread, state on local disk; the rest are Kafka
// Streams' defaults. It runs until the benchmark kills it.

import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Pattern;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

public class KafkaStreamsPeer {
    /** Word separators: the words are the runs of ASCII letters and digits. */
    private static final Pattern NOT_WORD = Pattern.compile("[^\\p{Alnum}]+");

    static List<String> words(String line) {
        return Arrays.stream(NOT_WORD.split(line.toLowerCase(Locale.ROOT)))
                .filter(w -> !w.isEmpty())
                .toList();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 9) {
            System.err.println("usage: KafkaStreamsPeer WORKLOAD BOOTSTRAP INPUT OUTPUT APPLICATION_ID STATE_DIR COMMIT_INTERVAL_MS GRACE_MS TABLE");
            System.exit(2);
        }
        String workload = args[0], input = args[2], output = args[3], table = args[8];
        long graceMs = Long.parseLong(args[7]);

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[4]);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[5]);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, args[6]);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);

        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> lines = builder.stream(input);
        switch (workload) {
            case "stateless" -> lines
                    .filter((key, value) -> value.length() % 10 != 0)
                    .mapValues(value -> value.toUpperCase(Locale.ROOT))
                    .to(output);
            case "word-count" -> lines
                    .flatMapValues(KafkaStreamsPeer::words)
                    .groupBy((key, word) -> word)
                    .count(Materialized.as("word-counts"))
                    .toStream()
                    .to(output, Produced.with(Serdes.String(), Serdes.Long()));
            case "tumbling-count" -> lines
                    .groupByKey()
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofSeconds(1), Duration.ofMillis(graceMs)))
                    .count(Materialized.as("window-counts"))
                    .toStream()
                    .to(output, Produced.with(
                            WindowedSerdes.timeWindowedSerdeFrom(String.class, 1000L), Serdes.Long()));
            case "stream-table-join" -> {
                KTable<String, String> plants = builder.table(table);
                lines.join(plants, (line, plant) -> plant + " " + line).to(output);
            }
            default -> {
                System.err.println("unknown workload " + workload);
                System.exit(2);
            }
        }

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch closed = new CountDownLatch(1);
        streams.setUncaughtExceptionHandler(e -> {
            // The benchmark sees the exit and fails the run.
            e.printStackTrace();
            Runtime.getRuntime().halt(1);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            closed.countDown();
        }));
        streams.start();
        System.err.println("kafka-streams peer: started " + workload);
        closed.await();
    }
}
