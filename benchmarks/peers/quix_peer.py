"""The Quix Streams side of the peer benchmark (benchmarks/src/bin/peers.rs).

    python quix_peer.py WORKLOAD BOOTSTRAP INPUT OUTPUT CONSUMER_GROUP STATE_DIR \
        COMMIT_INTERVAL_MS GRACE_MS TABLE

WORKLOAD is stateless, word-count, tumbling-count or stream-table-join (TABLE is the
sensor -> plant table's topic, read by the join only); the pipelines are the same as
the other engines' (see peers.rs). Quix Streams has no stream-table join: the join
runs its nearest equivalent, `join_asof`, which keeps the table topic's rows in its
state store and joins each reading with its key's latest row at or before the
reading's timestamp (the table's rows are older than every reading). Settings fixed for every engine: at-least-once, the
commit interval, one process, state (RocksDB, with changelog topics) on local disk,
reading from the earliest offset; the rest are Quix Streams' defaults. It runs until
the benchmark kills it.
"""

import re
import sys

from quixstreams import Application

NOT_WORD = re.compile(r"[^0-9a-z]+")


def words(line):
    """The lowercase runs of ASCII letters and digits, as the other engines split."""
    return [w for w in NOT_WORD.split(line.lower()) if w]


def count(_word, state):
    """One more occurrence of the message's key (the word) in its RocksDB state."""
    n = state.get("count", 0) + 1
    state.set("count", n)
    return n


def main():
    if len(sys.argv) != 10:
        sys.exit(
            "usage: quix_peer.py WORKLOAD BOOTSTRAP INPUT OUTPUT CONSUMER_GROUP "
            "STATE_DIR COMMIT_INTERVAL_MS GRACE_MS TABLE"
        )
    workload, bootstrap, input_name, output_name, group, state_dir = sys.argv[1:7]
    commit_interval_ms, grace_ms = int(sys.argv[7]), int(sys.argv[8])
    table_name = sys.argv[9]
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=commit_interval_ms / 1000.0,
        processing_guarantee="at-least-once",
        state_dir=state_dir,
        use_changelog_topics=True,
        loglevel="WARNING",
    )
    source = app.topic(input_name, key_deserializer="str", value_deserializer="str")
    sdf = app.dataframe(source)
    if workload == "stateless":
        sink = app.topic(output_name, key_serializer="str", value_serializer="str")
        sdf = sdf.filter(lambda line: len(line) % 10 != 0).apply(str.upper)
    elif workload == "word-count":
        sink = app.topic(output_name, key_serializer="str", value_serializer="json")
        sdf = sdf.apply(words, expand=True)
        sdf = sdf.group_by(lambda word: word, name="words")
        sdf = sdf.apply(count, stateful=True)
    elif workload == "tumbling-count":
        sink = app.topic(output_name, key_serializer="str", value_serializer="json")
        sdf = sdf.tumbling_window(duration_ms=1000, grace_ms=grace_ms).count().current()
    elif workload == "stream-table-join":
        sink = app.topic(output_name, key_serializer="str", value_serializer="str")
        plants = app.dataframe(
            app.topic(table_name, key_deserializer="str", value_deserializer="str")
        )
        sdf = sdf.join_asof(
            plants, how="inner", on_merge=lambda line, plant: f"{plant} {line}"
        )
    else:
        sys.exit(f"unknown workload {workload}")
    sdf.to_topic(sink)
    print(f"quix peer: started {workload}", file=sys.stderr, flush=True)
    app.run()


if __name__ == "__main__":
    main()
