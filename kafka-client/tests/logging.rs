//! librdkafka's own log lines and errors arrive as `tracing` events under the
//! target `librdkafka`, at matching levels.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_client::{ClientConfig, Producer, ProducerRecord};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

type Captured = Arc<Mutex<Vec<(String, Level, String)>>>;

/// Keeps (target, level, message) of every event.
struct Capture(Captured);

struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!(" {}={}", field.name(), value));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut text = MessageText(String::new());
        event.record(&mut text);
        let meta = event.metadata();
        self.0
            .lock()
            .unwrap()
            .push((meta.target().to_owned(), *meta.level(), text.0));
    }
}

#[tokio::test]
async fn librdkafka_logs_and_errors_go_to_tracing() {
    let captured: Captured = Arc::default();
    // librdkafka logs from its own threads, so the subscriber must be global.
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(Capture(captured.clone())),
    )
    .unwrap();

    // Nothing listens on port 1: the connection failure must surface as events.
    let producer: Producer<String, String> =
        Producer::new(&ClientConfig::new("127.0.0.1:1").set("message.timeout.ms", "1500")).unwrap();
    let err = producer
        .send(ProducerRecord::new("nowhere", "k".into(), "v".into()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    tokio::time::timeout(
        Duration::from_secs(5),
        producer.flush(Duration::from_secs(1)),
    )
    .await
    .ok();

    let events = captured.lock().unwrap().clone();
    let from_librdkafka: Vec<_> = events
        .iter()
        .filter(|(t, _, _)| t == "librdkafka")
        .collect();
    assert!(
        from_librdkafka
            .iter()
            .any(|(_, level, text)| *level <= Level::WARN && text.contains("127.0.0.1:1")),
        "no librdkafka warning/error about the broker in {events:#?}"
    );
}
