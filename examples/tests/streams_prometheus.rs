//! Runs the `streams_prometheus` example against the cluster named by
//! `KAFKA_BOOTSTRAP_SERVERS` (librdkafka's mock cluster when unset), scrapes its
//! `/metrics` endpoint over HTTP once it says the metrics are ready, parses the
//! Prometheus exposition text, and checks that the streams metrics are there with
//! plausible values: every reading processed once, latencies above zero and below a
//! second, polls and commits counted, lag known and not negative, the store timed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};

const RECORDS: u64 = 500;

fn value(sample: &Sample) -> f64 {
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => f64::NAN,
    }
}

fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.contains(" 200 "), "{head}");
    body.to_owned()
}

#[test]
fn prometheus_endpoint_shows_plausible_streams_metrics() {
    // A free loopback port for the example's endpoint.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streams_prometheus"))
        .env("METRICS_ADDR", addr.to_string())
        .env("RECORDS", RECORDS.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the example");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    loop {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).unwrap();
        printed.push_str(&line);
        assert!(
            n > 0,
            "the example ended before its metrics were ready:\n{printed}"
        );
        if line.starts_with("metrics ready at") {
            break;
        }
    }

    let body = scrape(addr);
    let parsed = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parse");
    let mut by_name: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in &parsed.samples {
        by_name.entry(s.metric.as_str()).or_default().push(s);
    }
    let all = |name: &str| -> Vec<&Sample> {
        by_name
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from the exposition:\n{body}"))
    };
    let sum = |name: &str| all(name).iter().map(|s| value(s)).sum::<f64>();

    // Every reading processed exactly once: by the client, its threads and its tasks.
    assert_eq!(sum("kafka_streams_processed_records_total"), RECORDS as f64);
    assert_eq!(sum("kafka_streams_thread_process_total"), RECORDS as f64);
    assert_eq!(sum("kafka_streams_process_total"), RECORDS as f64);
    for s in all("kafka_streams_process_total") {
        assert!(s.labels.get("thread").is_some() && s.labels.get("task").is_some());
    }
    assert!(sum("kafka_streams_process_rate") > 0.0);
    // Latencies: above zero, below a second per record or commit.
    for name in [
        "kafka_streams_process_latency_avg_ms",
        "kafka_streams_process_latency_max_ms",
        "kafka_streams_commit_latency_avg_ms",
        "kafka_streams_put_latency_avg_ms",
        "kafka_streams_get_latency_avg_ms",
    ] {
        let samples = all(name);
        assert!(
            samples.iter().any(|s| value(s) > 0.0),
            "{name} is never above zero:\n{body}"
        );
        assert!(
            samples.iter().all(|s| (0.0..1_000.0).contains(&value(s))),
            "{name} out of range:\n{body}"
        );
    }
    // Polls brought the readings; commits happened.
    assert!(sum("kafka_streams_poll_total") >= 1.0);
    let poll_max = all("kafka_streams_poll_records_max")
        .iter()
        .map(|s| value(s))
        .fold(0.0, f64::max);
    assert!(poll_max >= 1.0 && poll_max <= RECORDS as f64, "{poll_max}");
    assert!(sum("kafka_streams_commit_total") >= 1.0);
    assert_eq!(sum("kafka_streams_dropped_records_total"), 0.0);
    // End-to-end latency: the readings were sent just before; not negative, well
    // under the run's length.
    for s in all("kafka_streams_record_e2e_latency_max_ms") {
        assert!((0.0..600_000.0).contains(&value(s)), "{body}");
    }
    // Lag per input partition: known for both partitions, none left.
    let lags = all("kafka_streams_records_lag");
    assert_eq!(lags.len(), 2, "{body}");
    for s in &lags {
        assert_eq!(value(s), 0.0, "{body}");
        assert!(s.labels.get("topic").is_some() && s.labels.get("partition").is_some());
    }
    // The store: a get and a put per reading, labelled with its name.
    assert_eq!(sum("kafka_streams_get_total"), RECORDS as f64);
    assert!(sum("kafka_streams_put_total") >= 1.0);
    for s in all("kafka_streams_put_total") {
        assert_eq!(s.labels.get("store"), Some("readings-per-sensor"));
    }

    // Closing standard input stops the example, which then checks its close.
    drop(child.stdin.take());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}:\n{printed}{rest}");
    assert!(rest.contains("ok: 500 readings processed"), "{rest}");
}
