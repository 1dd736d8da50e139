//! Client statistics and health: a typed snapshot of librdkafka's statistics,
//! published by every producer and consumer, and a Prometheus text rendering.
//!
//! Statistics are emitted every `statistics.interval.ms` (set it with
//! [`ClientConfig::statistics_interval`](crate::ClientConfig::statistics_interval);
//! off by default). [`Producer::statistics`](crate::Producer::statistics) and
//! [`Consumer::statistics`](crate::Consumer::statistics) return a
//! `tokio::sync::watch` receiver holding the latest snapshot. A producer
//! publishes from its background thread; a consumer publishes while it is being
//! polled (`recv`), as librdkafka serves consumer callbacks from the poll loop.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use kafka_client::{ClientConfig, Consumer};
//!
//! let config = ClientConfig::new("localhost:9092")
//!     .group_id("readers")
//!     .statistics_interval(Duration::from_secs(5));
//! let consumer: Consumer<String, String> = Consumer::new(&config)?;
//! let mut stats = consumer.statistics();
//! stats.changed().await?;
//! if let Some(snapshot) = stats.borrow().as_ref() {
//!     println!("{}", snapshot.to_prometheus());
//! }
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::sync::Arc;

use rdkafka::statistics::{Statistics, Window};
use tokio::sync::watch;

/// The latest statistics snapshot of a client (`None` until the first one).
pub type StatsReceiver = watch::Receiver<Option<Arc<ClientStats>>>;

/// A latency window, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Mean.
    pub avg_us: i64,
    /// 99th percentile.
    pub p99_us: i64,
    /// Maximum.
    pub max_us: i64,
    /// Number of samples in the window.
    pub samples: i64,
}

impl From<&Window> for Latency {
    fn from(w: &Window) -> Self {
        Latency {
            avg_us: w.avg,
            p99_us: w.p99,
            max_us: w.max,
            samples: w.cnt,
        }
    }
}

/// One broker connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerStats {
    /// `host:port/node-id`.
    pub name: String,
    /// Broker node id (`-1` for bootstrap connections).
    pub node_id: i32,
    /// Connection state: `UP`, `DOWN`, `CONNECT`, `AUTH`, ...
    pub state: String,
    /// Request round-trip time.
    pub rtt: Option<Latency>,
    /// Requests waiting to be sent.
    pub outbuf_requests: i64,
    /// Requests sent, waiting for a response.
    pub waiting_responses: i64,
    /// Requests sent.
    pub tx_requests: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Responses received.
    pub rx_responses: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Request timeouts.
    pub request_timeouts: u64,
}

impl BrokerStats {
    /// True when the connection is up.
    pub fn is_up(&self) -> bool {
        self.state == "UP"
    }
}

/// One partition as this client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Leader broker id.
    pub leader: i32,
    /// Consumer lag: high watermark (or last stable offset for
    /// `read_committed`) minus the committed offset; `None` when unknown.
    pub consumer_lag: Option<i64>,
    /// This consumer's committed offset, when known.
    pub committed_offset: Option<i64>,
    /// The partition's high watermark, when known.
    pub high_watermark: Option<i64>,
    /// Messages waiting in the producer queue.
    pub queued_messages: i64,
    /// Messages ready to be sent.
    pub transmit_queue_messages: i64,
    /// Messages fetched, waiting to be consumed.
    pub fetch_queue_messages: i64,
    /// Messages produced.
    pub tx_messages: u64,
    /// Bytes produced.
    pub tx_bytes: u64,
    /// Messages consumed.
    pub rx_messages: u64,
    /// Bytes consumed.
    pub rx_bytes: u64,
}

/// A consumer's group membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// Coordinator state, e.g. `up`.
    pub state: String,
    /// Join state, e.g. `steady`.
    pub join_state: String,
    /// Rebalances so far.
    pub rebalances: i64,
    /// Partitions assigned.
    pub assignment_size: i32,
}

/// A typed snapshot of librdkafka's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStats {
    /// librdkafka's instance name, e.g. `rdkafka#consumer-1`.
    pub name: String,
    /// `client.id`.
    pub client_id: String,
    /// `producer` or `consumer`.
    pub client_type: String,
    /// Wall clock time of the snapshot, seconds since the epoch.
    pub time: i64,
    /// The client's age at the snapshot, microseconds since it was created (librdkafka's
    /// `age`): successive snapshots differ by `statistics.interval.ms`, however late
    /// the application receives them.
    pub age_micros: i64,
    /// Messages in the producer queues (queue depth).
    pub queued_messages: u64,
    /// Bytes in the producer queues.
    pub queued_bytes: u64,
    /// Requests sent to brokers.
    pub tx_requests: i64,
    /// Bytes sent to brokers.
    pub tx_bytes: i64,
    /// Responses received from brokers.
    pub rx_responses: i64,
    /// Bytes received from brokers.
    pub rx_bytes: i64,
    /// Messages sent (produced).
    pub tx_messages: i64,
    /// Message bytes sent.
    pub tx_message_bytes: i64,
    /// Messages received (consumed).
    pub rx_messages: i64,
    /// Message bytes received.
    pub rx_message_bytes: i64,
    /// Broker connections (internal pseudo-brokers excluded), sorted by name.
    pub brokers: Vec<BrokerStats>,
    /// Partitions, sorted by topic and partition.
    pub partitions: Vec<PartitionStats>,
    /// Group membership, for consumers in a group.
    pub group: Option<GroupStats>,
}

fn known(value: i64) -> Option<i64> {
    (value >= 0).then_some(value)
}

impl From<&Statistics> for ClientStats {
    fn from(s: &Statistics) -> Self {
        let mut brokers: Vec<BrokerStats> = s
            .brokers
            .values()
            .filter(|b| b.source != "internal")
            .map(|b| BrokerStats {
                name: b.name.clone(),
                node_id: b.nodeid,
                state: b.state.clone(),
                rtt: b.rtt.as_ref().map(Latency::from),
                outbuf_requests: b.outbuf_cnt,
                waiting_responses: b.waitresp_cnt,
                tx_requests: b.tx,
                tx_bytes: b.txbytes,
                rx_responses: b.rx,
                rx_bytes: b.rxbytes,
                request_timeouts: b.req_timeouts,
            })
            .collect();
        brokers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut partitions: Vec<PartitionStats> = s
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .values()
                    .filter(|p| p.partition >= 0) // -1 is librdkafka's "unassigned" queue
                    .map(|p| PartitionStats {
                        topic: t.topic.clone(),
                        partition: p.partition,
                        leader: p.leader,
                        consumer_lag: known(p.consumer_lag),
                        committed_offset: known(p.committed_offset),
                        high_watermark: known(p.hi_offset),
                        queued_messages: p.msgq_cnt,
                        transmit_queue_messages: p.xmit_msgq_cnt,
                        fetch_queue_messages: p.fetchq_cnt,
                        tx_messages: p.txmsgs,
                        tx_bytes: p.txbytes,
                        rx_messages: p.rxmsgs,
                        rx_bytes: p.rxbytes,
                    })
            })
            .collect();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        ClientStats {
            name: s.name.clone(),
            client_id: s.client_id.clone(),
            client_type: s.client_type.clone(),
            time: s.time,
            age_micros: s.age,
            queued_messages: s.msg_cnt,
            queued_bytes: s.msg_size,
            tx_requests: s.tx,
            tx_bytes: s.tx_bytes,
            rx_responses: s.rx,
            rx_bytes: s.rx_bytes,
            tx_messages: s.txmsgs,
            tx_message_bytes: s.txmsg_bytes,
            rx_messages: s.rxmsgs,
            rx_message_bytes: s.rxmsg_bytes,
            brokers,
            partitions,
            group: s.cgrp.as_ref().map(|g| GroupStats {
                state: g.state.clone(),
                join_state: g.join_state.clone(),
                rebalances: g.rebalance_cnt,
                assignment_size: g.assignment_size,
            }),
        }
    }
}

impl ClientStats {
    /// The statistics of one partition.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionStats> {
        self.partitions
            .iter()
            .find(|p| p.topic == topic && p.partition == partition)
    }

    /// Health: true when at least one known broker (not a bootstrap address)
    /// connection is up.
    pub fn is_healthy(&self) -> bool {
        self.brokers.iter().any(|b| b.node_id >= 0 && b.is_up())
    }

    /// The snapshot in Prometheus' text exposition format (metrics prefixed
    /// `kafka_client_`, labelled with `client_id` and librdkafka's instance
    /// `name`), for a `/metrics` endpoint.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let client = format!(
            "client_id=\"{}\",name=\"{}\",type=\"{}\"",
            escape(&self.client_id),
            escape(&self.name),
            escape(&self.client_type)
        );
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP kafka_client_{name} {help}");
            let _ = writeln!(out, "# TYPE kafka_client_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "kafka_client_{name}{{{labels}}} {value}");
            }
        };
        let one = |v: f64| vec![(client.clone(), v)];
        metric(
            "queue_messages",
            "gauge",
            "Messages waiting in the producer queues.",
            &one(self.queued_messages as f64),
        );
        metric(
            "queue_bytes",
            "gauge",
            "Bytes waiting in the producer queues.",
            &one(self.queued_bytes as f64),
        );
        metric(
            "tx_requests_total",
            "counter",
            "Requests sent to brokers.",
            &one(self.tx_requests as f64),
        );
        metric(
            "tx_bytes_total",
            "counter",
            "Bytes sent to brokers.",
            &one(self.tx_bytes as f64),
        );
        metric(
            "rx_responses_total",
            "counter",
            "Responses received from brokers.",
            &one(self.rx_responses as f64),
        );
        metric(
            "rx_bytes_total",
            "counter",
            "Bytes received from brokers.",
            &one(self.rx_bytes as f64),
        );
        metric(
            "tx_messages_total",
            "counter",
            "Messages produced.",
            &one(self.tx_messages as f64),
        );
        metric(
            "tx_message_bytes_total",
            "counter",
            "Message bytes produced.",
            &one(self.tx_message_bytes as f64),
        );
        metric(
            "rx_messages_total",
            "counter",
            "Messages consumed.",
            &one(self.rx_messages as f64),
        );
        metric(
            "rx_message_bytes_total",
            "counter",
            "Message bytes consumed.",
            &one(self.rx_message_bytes as f64),
        );

        let broker = |b: &BrokerStats| format!("{client},broker=\"{}\"", escape(&b.name));
        let up: Vec<_> = self
            .brokers
            .iter()
            .map(|b| (broker(b), if b.is_up() { 1.0 } else { 0.0 }))
            .collect();
        metric(
            "broker_up",
            "gauge",
            "1 when the broker connection is up.",
            &up,
        );
        let rtt = |pick: fn(&Latency) -> i64| -> Vec<(String, f64)> {
            self.brokers
                .iter()
                .filter_map(|b| b.rtt.as_ref().map(|l| (broker(b), pick(l) as f64 / 1e6)))
                .collect()
        };
        metric(
            "broker_rtt_avg_seconds",
            "gauge",
            "Mean broker round-trip time.",
            &rtt(|l| l.avg_us),
        );
        metric(
            "broker_rtt_p99_seconds",
            "gauge",
            "99th percentile broker round-trip time.",
            &rtt(|l| l.p99_us),
        );
        let outbuf: Vec<_> = self
            .brokers
            .iter()
            .map(|b| (broker(b), b.outbuf_requests as f64))
            .collect();
        metric(
            "broker_outbuf_requests",
            "gauge",
            "Requests waiting to be sent to the broker.",
            &outbuf,
        );

        let partition = |p: &PartitionStats| {
            format!(
                "{client},topic=\"{}\",partition=\"{}\"",
                escape(&p.topic),
                p.partition
            )
        };
        let per_partition = |pick: fn(&PartitionStats) -> Option<i64>| -> Vec<(String, f64)> {
            self.partitions
                .iter()
                .filter_map(|p| pick(p).map(|v| (partition(p), v as f64)))
                .collect()
        };
        metric(
            "consumer_lag",
            "gauge",
            "High watermark minus committed offset.",
            &per_partition(|p| p.consumer_lag),
        );
        metric(
            "committed_offset",
            "gauge",
            "Committed offset.",
            &per_partition(|p| p.committed_offset),
        );
        metric(
            "high_watermark",
            "gauge",
            "Partition high watermark.",
            &per_partition(|p| p.high_watermark),
        );
        metric(
            "partition_queue_messages",
            "gauge",
            "Messages queued for the partition (producer).",
            &per_partition(|p| Some(p.queued_messages)),
        );
        metric(
            "partition_tx_messages_total",
            "counter",
            "Messages produced to the partition.",
            &per_partition(|p| Some(p.tx_messages as i64)),
        );
        metric(
            "partition_rx_messages_total",
            "counter",
            "Messages consumed from the partition.",
            &per_partition(|p| Some(p.rx_messages as i64)),
        );
        out
    }
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Publishes each statistics callback of a client to its watchers.
pub(crate) struct StatsSink {
    tx: watch::Sender<Option<Arc<ClientStats>>>,
}

impl Default for StatsSink {
    fn default() -> Self {
        StatsSink {
            tx: watch::channel(None).0,
        }
    }
}

impl StatsSink {
    pub(crate) fn publish(&self, statistics: &Statistics) {
        let snapshot = Arc::new(ClientStats::from(statistics));
        // send_replace: keep the latest even while nobody is watching.
        self.tx.send_replace(Some(snapshot));
    }

    pub(crate) fn subscribe(&self) -> StatsReceiver {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::statistics::{Broker, Partition, Topic};

    fn sample() -> Statistics {
        let mut stats = Statistics {
            name: "rdkafka#consumer-1".into(),
            client_id: "plant \"ingest\"".into(),
            client_type: "consumer".into(),
            msg_cnt: 7,
            rxmsgs: 42,
            ..Default::default()
        };
        stats.brokers.insert(
            "b1".into(),
            Broker {
                name: "127.0.0.1:9092/1".into(),
                nodeid: 1,
                state: "UP".into(),
                source: "learned".into(),
                rtt: Some(Window {
                    avg: 1500,
                    p99: 4000,
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        stats.brokers.insert(
            "internal".into(),
            Broker {
                name: ":0/internal".into(),
                nodeid: -1,
                source: "internal".into(),
                ..Default::default()
            },
        );
        let mut topic = Topic {
            topic: "plant01".into(),
            ..Default::default()
        };
        for (p, lag) in [(-1, -1), (0, 60), (1, -1)] {
            topic.partitions.insert(
                p,
                Partition {
                    partition: p,
                    consumer_lag: lag,
                    committed_offset: if lag >= 0 { 40 } else { -1001 },
                    hi_offset: 100,
                    ..Default::default()
                },
            );
        }
        stats.topics.insert("plant01".into(), topic);
        stats
    }

    #[test]
    fn snapshot_is_typed_and_filtered() {
        let snapshot = ClientStats::from(&sample());
        assert_eq!(snapshot.brokers.len(), 1, "internal broker dropped");
        assert_eq!(snapshot.partitions.len(), 2, "UA partition dropped");
        let p0 = snapshot.partition("plant01", 0).unwrap();
        assert_eq!((p0.consumer_lag, p0.committed_offset), (Some(60), Some(40)));
        let p1 = snapshot.partition("plant01", 1).unwrap();
        assert_eq!((p1.consumer_lag, p1.committed_offset), (None, None));
        assert_eq!(snapshot.queued_messages, 7);
        assert_eq!(snapshot.brokers[0].rtt.unwrap().avg_us, 1500);
        assert!(snapshot.is_healthy());
    }

    #[test]
    fn prometheus_text_has_help_type_and_escaped_labels() {
        let text = ClientStats::from(&sample()).to_prometheus();
        assert!(
            text.contains("# TYPE kafka_client_consumer_lag gauge"),
            "{text}"
        );
        assert!(text.contains(
            "kafka_client_consumer_lag{client_id=\"plant \\\"ingest\\\"\",name=\"rdkafka#consumer-1\",type=\"consumer\",topic=\"plant01\",partition=\"0\"} 60\n"
        ), "{text}");
        assert!(
            !text.contains("partition=\"1\"} -1"),
            "unknown lag is not exported"
        );
        assert!(text.contains("kafka_client_broker_rtt_avg_seconds{client_id=\"plant \\\"ingest\\\"\",name=\"rdkafka#consumer-1\",type=\"consumer\",broker=\"127.0.0.1:9092/1\"} 0.0015"), "{text}");
        assert!(text.contains("kafka_client_queue_messages{") && text.contains("} 7\n"));
        assert!(text.contains("kafka_client_rx_messages_total{") && text.contains("} 42\n"));
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad sample {line}"));
        }
    }

    #[tokio::test]
    async fn sink_publishes_to_watchers() {
        let sink = StatsSink::default();
        let mut rx = sink.subscribe();
        assert!(rx.borrow().is_none());
        sink.publish(&sample());
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow().as_ref().unwrap().rx_messages, 42);
    }
}
