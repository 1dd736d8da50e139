//! TLS and SASL: settings validated when a client is built, secrets kept out of
//! `Debug`, and live checks against an Apache Kafka broker started here with
//! SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), SASL_SSL and mutual-TLS
//! listeners ([`SecureBroker`]): good credentials connect, produce and consume; bad
//! ones fail fast with the broker's authentication error.

use std::path::Path;
use std::time::{Duration, Instant};

use integration_tests::{eventually, unique_name, SecureBroker};
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

/// Creates a topic, produces a record and consumes it back over `config`.
async fn round_trip(config: &ClientConfig, what: &str) {
    let topic = unique_name("secure");
    let admin = AdminClient::new(config).unwrap();
    assert!(
        admin
            .check_connection(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            >= 1
    );
    admin
        .create_topic(NewTopic::new(&topic, 1).replication_factor(1))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    eventually("the secure topic's metadata", || async {
        admin.describe_topic(&topic).await.ok().map(|_| ())
    })
    .await;
    let producer: Producer<String, String> = Producer::new(config).unwrap();
    producer
        .send(ProducerRecord::new(
            &topic,
            "k".to_string(),
            what.to_string(),
        ))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let consumer: Consumer<String, String> =
        Consumer::new(&config.clone().group_id(unique_name("secure"))).unwrap();
    consumer
        .assign(&[(TopicPartition::new(&topic, 0), Offset::Beginning)])
        .unwrap();
    assert_eq!(consumer.recv().await.unwrap().value, what);
}

/// The connection error `config` gets, which must come within 10 s and name the
/// bootstrap servers.
async fn connection_failure(config: ClientConfig) -> String {
    let servers = config.get("bootstrap.servers").unwrap().to_owned();
    let started = Instant::now();
    let result = AdminClient::new(&config)
        .unwrap()
        .check_connection(Duration::from_secs(9))
        .await;
    let took = started.elapsed();
    match result {
        Err(err @ AdminError::Connection { .. }) => {
            let text = err.to_string();
            assert!(text.contains(&servers), "{text}");
            assert!(took < Duration::from_secs(10), "took {took:?}: {text}");
            text
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

/// Fails connecting within the time limit, with librdkafka's reason for a
/// rejected SASL handshake.
async fn assert_authentication_fails(config: ClientConfig, what: &str) {
    let failure = connection_failure(config).await;
    println!("{what}: {failure}");
    assert!(failure.contains("SASL authentication"), "{what}: {failure}");
}

fn sasl(
    broker: &SecureBroker,
    protocol: SecurityProtocol,
    mechanism: SaslMechanism,
    password: &str,
) -> ClientConfig {
    let (listener, user) = match (protocol, mechanism) {
        (SecurityProtocol::SaslSsl, _) => ("SASL_SSL", user_of(mechanism)),
        _ => ("SASL_PLAINTEXT", user_of(mechanism)),
    };
    let config = ClientConfig::new(broker.get(listener))
        .security_protocol(protocol)
        .sasl(mechanism, broker.get(user), password)
        .set("socket.connection.setup.timeout.ms", "5000");
    match protocol {
        SecurityProtocol::SaslSsl => config.tls_ca(broker.get("CA")),
        _ => config,
    }
}

fn user_of(mechanism: SaslMechanism) -> &'static str {
    match mechanism {
        SaslMechanism::Plain => "PLAIN_USER",
        SaslMechanism::ScramSha256 => "SCRAM_SHA_256_USER",
        SaslMechanism::ScramSha512 => "SCRAM_SHA_512_USER",
        SaslMechanism::OAuthBearer => unreachable!("the test broker has no OAUTHBEARER"),
    }
}

fn password_of(broker: &SecureBroker, mechanism: SaslMechanism) -> String {
    broker
        .get(&user_of(mechanism).replace("_USER", "_PASSWORD"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_and_scram_connect_with_good_credentials_and_fail_fast_with_bad_ones() {
    let broker = SecureBroker::start();
    for mechanism in [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ] {
        let what = format!("SASL_PLAINTEXT {mechanism:?}");
        let good = password_of(&broker, mechanism);
        round_trip(
            &sasl(&broker, SecurityProtocol::SaslPlaintext, mechanism, &good),
            &what,
        )
        .await;
        assert_authentication_fails(
            sasl(
                &broker,
                SecurityProtocol::SaslPlaintext,
                mechanism,
                "wrong-password",
            ),
            &format!("{what}, wrong password"),
        )
        .await;
    }
    // A SCRAM user of one hash does not exist for the other.
    let bob = password_of(&broker, SaslMechanism::ScramSha256);
    let mut crossed = sasl(
        &broker,
        SecurityProtocol::SaslPlaintext,
        SaslMechanism::ScramSha512,
        &bob,
    );
    crossed = crossed.set("sasl.username", broker.get("SCRAM_SHA_256_USER"));
    assert_authentication_fails(crossed, "a SCRAM-SHA-256 user over SCRAM-SHA-512").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_connects_with_good_credentials_and_fails_clearly_with_bad_ones() {
    let broker = SecureBroker::start();
    let password = password_of(&broker, SaslMechanism::ScramSha512);
    let good = sasl(
        &broker,
        SecurityProtocol::SaslSsl,
        SaslMechanism::ScramSha512,
        &password,
    );
    round_trip(&good, "SASL_SSL SCRAM-SHA-512").await;
    round_trip(
        &sasl(
            &broker,
            SecurityProtocol::SaslSsl,
            SaslMechanism::Plain,
            &password_of(&broker, SaslMechanism::Plain),
        ),
        "SASL_SSL PLAIN",
    )
    .await;

    assert_authentication_fails(
        sasl(
            &broker,
            SecurityProtocol::SaslSsl,
            SaslMechanism::ScramSha512,
            "wrong-password",
        ),
        "SASL_SSL, wrong password",
    )
    .await;
    // The broker's certificate is not signed by the CA the client trusts.
    let untrusted = connection_failure(good.clone().tls_ca(broker.get("OTHER_CA"))).await;
    println!("untrusted CA: {untrusted}");
    assert!(
        untrusted.contains("certificate verify failed"),
        "{untrusted}"
    );
    // A plaintext client on the TLS listener.
    let plaintext = connection_failure(
        ClientConfig::new(broker.get("SASL_SSL")).set("socket.connection.setup.timeout.ms", "5000"),
    )
    .await;
    println!("plaintext client: {plaintext}");
    // librdkafka logs nothing at error level for a listener that drops a
    // plaintext client, so the reason is the transport failure itself, or, once
    // every attempt has failed, that all broker connections are down.
    assert!(
        ["security.protocol", "transport failure", "AllBrokersDown"]
            .iter()
            .any(|reason| plaintext.contains(reason)),
        "{plaintext}"
    );
}

fn mtls(broker: &SecureBroker, cert: &str, key: &str) -> ClientConfig {
    ClientConfig::new(broker.get("SSL"))
        .security_protocol(SecurityProtocol::Ssl)
        .tls_ca(broker.get("CA"))
        .tls_client_cert(cert, key, None)
        .set("socket.connection.setup.timeout.ms", "5000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_connects_with_a_client_certificate_and_fails_without_one() {
    let broker = SecureBroker::start();
    round_trip(
        &mtls(&broker, broker.get("CLIENT_CERT"), broker.get("CLIENT_KEY")),
        "SSL with a client certificate",
    )
    .await;

    // Without a certificate the broker (ssl.client.auth=required) ends the handshake.
    let anonymous = connection_failure(
        ClientConfig::new(broker.get("SSL"))
            .security_protocol(SecurityProtocol::Ssl)
            .tls_ca(broker.get("CA"))
            .set("socket.connection.setup.timeout.ms", "5000"),
    )
    .await;
    println!("no client certificate: {anonymous}");
    assert!(anonymous.contains("bad certificate"), "{anonymous}");
    // A certificate from a CA the broker does not trust is refused too.
    let dir = broker.dir().join("tls");
    let untrusted = connection_failure(mtls(
        &broker,
        &path(&dir.join("other-ca.pem")),
        &path(&dir.join("other-ca.key")),
    ))
    .await;
    println!("untrusted client certificate: {untrusted}");
    assert!(untrusted.contains("bad certificate"), "{untrusted}");
}

fn path(p: &Path) -> String {
    p.display().to_string()
}
