//! TLS and SASL: settings validated when a client is built, secrets kept out of
//! `Debug`, and a live check against a nisshi broker started here with TLS
//! (`--cert/--key`) and SCRAM authentication (`--authentication`, `nisshi user`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{eventually, unique_name};
use kafka_client::admin::{AdminClient, AdminError, NewTopic};
use kafka_client::config::{SaslMechanism, SecurityProtocol};
use kafka_client::{ClientConfig, Consumer, Offset, Producer, ProducerRecord, TopicPartition};

#[test]
fn debug_of_a_sasl_config_hides_the_password() {
    let config = ClientConfig::new("broker:9093")
        .security_protocol(SecurityProtocol::SaslSsl)
        .sasl(SaslMechanism::ScramSha512, "alice", "correct-horse-battery");
    let shown = format!("{config:?}");
    assert!(!shown.contains("correct-horse-battery"), "{shown}");
    assert!(
        shown.contains("alice") && shown.contains("[redacted]"),
        "{shown}"
    );
    let admin = AdminClient::new(&config.clone()).unwrap();
    assert!(!format!("{admin:?}").contains("correct-horse-battery"));
}

fn build_error(config: &ClientConfig) -> String {
    match Producer::<String, String>::new(config) {
        Ok(_) => panic!("{config:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tls_and_sasl_settings_are_validated_when_built() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let not_pem = dir.path().join("ca.der");
    std::fs::write(&not_pem, [0x30, 0x82, 0x01]).unwrap();
    let tls = || ClientConfig::new("b:9093").security_protocol(SecurityProtocol::Ssl);

    let err = build_error(&tls().tls_ca(dir.path().join("missing.pem")));
    assert!(
        err.contains("ssl.ca.location")
            && err.contains("missing.pem")
            && err.contains("does not exist"),
        "{err}"
    );
    let err = build_error(&tls().tls_ca(&not_pem));
    assert!(
        err.contains("not a PEM file") && err.contains("ca.der"),
        "{err}"
    );
    let err = build_error(&tls().set("ssl.certificate.location", pem.display().to_string()));
    assert!(err.contains("without ssl.key.location"), "{err}");
    let err = build_error(&ClientConfig::new("b:9092").tls_ca(&pem));
    assert!(err.contains("does not use TLS"), "{err}");
    let err = build_error(&ClientConfig::new("b:9092").sasl_plain("u", "p"));
    assert!(err.contains("does not use SASL"), "{err}");
    let err = build_error(
        &ClientConfig::new("b:9092")
            .security_protocol(SecurityProtocol::SaslPlaintext)
            .set("sasl.mechanism", "SCRAM-SHA-1"),
    );
    assert!(
        err.contains("unsupported sasl.mechanism") && err.contains("SCRAM-SHA-1"),
        "{err}"
    );
    let err = build_error(
        &ClientConfig::new("b:9092")
            .security_protocol(SecurityProtocol::SaslSsl)
            .set("sasl.mechanism", "SCRAM-SHA-256")
            .set("sasl.username", "u"),
    );
    assert!(err.contains("needs sasl.password"), "{err}");
    let err = build_error(&ClientConfig::new("b:9092").set("security.protocol", "tls"));
    assert!(err.contains("unknown security.protocol"), "{err}");
    // The same checks guard consumers and the admin client.
    assert!(Consumer::<String, String>::new(&tls().tls_ca(&not_pem)).is_err());
    assert!(AdminClient::new(&tls().tls_ca(&not_pem)).is_err());
    // A complete configuration passes.
    tls()
        .tls_ca(&pem)
        .tls_client_cert(&pem, &pem, None)
        .validate()
        .unwrap();
}

/// A nisshi broker process, stopped on drop.
struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nisshi_bin() -> PathBuf {
    let path = std::env::var_os("NISSHI_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("KAFKA_SDK_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/kafka-sdk")
                });
            cache.join("nisshi-0.8.1/bin/nisshi")
        });
    assert!(
        path.exists(),
        "the live TLS/SASL test starts its own nisshi broker, but {} is missing: run scripts/setup.sh (or set NISSHI_BIN)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &Path, port: u16, extra: &[&str]) -> Broker {
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join(format!("nisshi-{}.log", extra.len()))).unwrap();
    let child = Command::new(nisshi_bin())
        .current_dir(dir)
        .args(["--listener-url", &url, "--advertised-listener-url", &url])
        .args([
            "--storage-engine",
            "sqlite://nisshi.db",
            "--group-initial-rebalance-delay",
            "0s",
        ])
        .args(extra)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("starting nisshi");
    let mut broker = Broker { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = broker.child.try_wait() {
            panic!("nisshi exited ({status}); see {}", dir.display());
        }
        assert!(Instant::now() < deadline, "nisshi did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100)); // pacing a readiness probe of a child process
    }
    broker
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the live TLS test needs the openssl command to make certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1, signed by it; and a second,
/// untrusted CA.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other-ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=other-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

fn secure(port: u16, ca: &Path, password: &str) -> ClientConfig {
    ClientConfig::new(format!("127.0.0.1:{port}"))
        .security_protocol(SecurityProtocol::SaslSsl)
        .tls_ca(ca)
        .sasl(SaslMechanism::ScramSha512, "alice", password)
        .set("socket.connection.setup.timeout.ms", "5000")
}

/// Sends one record; the error text when it fails.
async fn try_send(config: &ClientConfig, topic: &str) -> Result<(), String> {
    let producer: Producer<String, String> = Producer::new(config).map_err(|e| e.to_string())?;
    producer
        .send(ProducerRecord::new(topic, "k".to_string(), "v".to_string()))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_scram_connects_with_good_credentials_and_fails_clearly_with_bad_ones() {
    integration_tests::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_owned();
    certificates(&dir);
    let port = free_port();
    // Create the SCRAM user on a plaintext broker over the same storage, then
    // restart it with TLS and authentication required.
    {
        let _plain = start(&dir, port, &[]);
        let out = Command::new(nisshi_bin())
            .current_dir(&dir)
            .args([
                "user",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{port}"),
            ])
            .args(["--mechanism", "scram512", "alice", "alice-secret"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nisshi user create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let broker = start(
        &dir,
        port,
        &[
            "--cert",
            "server.pem",
            "--key",
            "server.key",
            "--authentication",
        ],
    );
    let ca = dir.join("ca.pem");

    // Good credentials: admin, produce and consume over TLS with SCRAM-SHA-512.
    let good = secure(broker.port, &ca, "alice-secret");
    let topic = unique_name("secure");
    let admin = AdminClient::new(&good).unwrap();
    admin
        .create_topic(NewTopic::new(&topic, 1).replication_factor(1))
        .await
        .unwrap();
    eventually("the secure topic's metadata", || async {
        admin.describe_topic(&topic).await.ok().map(|_| ())
    })
    .await;
    try_send(&good, &topic).await.unwrap();
    let consumer: Consumer<String, String> =
        Consumer::new(&good.clone().group_id(unique_name("secure"))).unwrap();
    consumer
        .assign(&[(TopicPartition::new(&topic, 0), Offset::Beginning)])
        .unwrap();
    assert_eq!(consumer.recv().await.unwrap().value, "v");

    assert!(
        admin
            .check_connection(Duration::from_secs(10))
            .await
            .unwrap()
            >= 1
    );

    // Bad settings fail with librdkafka's reason, not just a timeout.
    let wrong_password = connection_failure(secure(broker.port, &ca, "wrong-password")).await;
    println!("wrong password: {wrong_password}");
    assert!(
        wrong_password.contains("SASL authentication"),
        "{wrong_password}"
    );
    let untrusted = connection_failure(secure(
        broker.port,
        &dir.join("other-ca.pem"),
        "alice-secret",
    ))
    .await;
    println!("untrusted CA: {untrusted}");
    assert!(
        untrusted.contains("certificate verify failed"),
        "{untrusted}"
    );
    let plaintext =
        connection_failure(ClientConfig::new(format!("127.0.0.1:{}", broker.port))).await;
    println!("plaintext client: {plaintext}");
    // librdkafka logs nothing at error level for a listener that drops a
    // plaintext client, so the reason is the transport failure itself.
    // Depending on timing librdkafka reports the dropped connection itself or,
    // once every attempt has failed, that all broker connections are down.
    assert!(
        ["security.protocol", "transport failure", "AllBrokersDown"]
            .iter()
            .any(|reason| plaintext.contains(reason)),
        "{plaintext}"
    );
}

/// The message of the connection error `config` gets.
async fn connection_failure(config: ClientConfig) -> String {
    let servers = config.get("bootstrap.servers").unwrap().to_owned();
    match AdminClient::new(&config)
        .unwrap()
        .check_connection(Duration::from_secs(5))
        .await
    {
        Err(err @ AdminError::Connection { .. }) => {
            let text = err.to_string();
            assert!(text.contains(&servers), "{text}");
            text
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}
