//! Passwords never reach the logs. Every log line of this test process (ours and
//! librdkafka's, at debug level with librdkafka's `security`, `broker` and `conf`
//! debug contexts on) is captured while clients connect to a secure Apache Kafka
//! broker with good and bad SASL credentials and a TLS key password; then no
//! password appears in them.
//!
//! Its own test binary, so that its global `tracing` subscriber is the one in force
//! whichever runner runs it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::SecureBroker;
use kafka_client::admin::AdminClient;
use kafka_client::config::{SaslMechanism, SecurityProtocol};
use kafka_client::{ClientConfig, Producer};

/// A `tracing` writer appending to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_appears_in_debug_output_or_captured_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let broker = SecureBroker::start();

    let mut secrets = vec![
        "wrong-password".to_owned(),
        "key-password-secret".to_owned(),
    ];
    for (mechanism, user, password) in [
        (SaslMechanism::Plain, "PLAIN_USER", "PLAIN_PASSWORD"),
        (
            SaslMechanism::ScramSha256,
            "SCRAM_SHA_256_USER",
            "SCRAM_SHA_256_PASSWORD",
        ),
        (
            SaslMechanism::ScramSha512,
            "SCRAM_SHA_512_USER",
            "SCRAM_SHA_512_PASSWORD",
        ),
    ] {
        secrets.push(broker.get(password).to_owned());
        for (listener, protocol) in [
            ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
            ("SASL_SSL", SecurityProtocol::SaslSsl),
        ] {
            for secret in [broker.get(password), "wrong-password"] {
                let mut config = ClientConfig::new(broker.get(listener))
                    .security_protocol(protocol)
                    .sasl(mechanism, broker.get(user), secret)
                    .set("debug", "security,broker,conf")
                    .set("socket.connection.setup.timeout.ms", "5000");
                if protocol == SecurityProtocol::SaslSsl {
                    config = config.tls_ca(broker.get("CA"));
                }
                tracing::info!("client config: {config:?}");
                let admin = AdminClient::new(&config).expect("admin client");
                tracing::info!("admin client: {admin:?}");
                let connected = admin.check_connection(Duration::from_secs(9)).await;
                tracing::info!("{mechanism:?} over {listener}: {connected:?}");
                assert_eq!(
                    connected.is_ok(),
                    secret != "wrong-password",
                    "{mechanism:?} over {listener}: {connected:?}"
                );
                // librdkafka dumps a new client's config (debug context `conf`).
                let producer: Producer<String, String> = Producer::new(&config).expect("producer");
                drop(producer);
            }
        }
    }
    // A TLS key password is a secret too (the key file need not be encrypted for
    // the setting to be shown or hidden).
    let tls = ClientConfig::new(broker.get("SSL"))
        .security_protocol(SecurityProtocol::Ssl)
        .tls_ca(broker.get("CA"))
        .tls_client_cert(
            broker.get("CLIENT_CERT"),
            broker.get("CLIENT_KEY"),
            Some("key-password-secret"),
        );
    tracing::info!("tls config: {tls:?}");

    let text = logs.text();
    // The capture saw the handshakes: librdkafka's SASL debug lines and the users.
    assert!(text.contains("SASL"), "no SASL log lines were captured");
    assert!(text.contains(broker.get("SCRAM_SHA_512_USER")), "{text}");
    assert!(text.contains("[redacted]"), "configs are logged, redacted");
    for secret in &secrets {
        let leaks: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(
            leaks.is_empty(),
            "{secret:?} appears in the logs: {leaks:#?}"
        );
    }
}
