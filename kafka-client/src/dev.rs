//! An embedded Kafka cluster for examples and fast tests: librdkafka's in-process
//! mock cluster.
//!
//! It speaks the Kafka protocol on a loopback port, so every client in the
//! process (and the admin and streams layers) can use it like a broker. It has no
//! CreateTopics API, so topics are made with [`EmbeddedCluster::create_topic`].
//!
//! Limits to know: it is for small runs (consumption was measured to stall after
//! about 180k records), and it does not hide aborted transactions from
//! `read_committed` consumers.
//!
//! ```no_run
//! use kafka_client::dev::EmbeddedCluster;
//! let cluster = EmbeddedCluster::start(1).unwrap();
//! cluster.create_topic("plant01", 3).unwrap();
//! let config = cluster.client_config();
//! ```

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::config::{ClientConfig, ENV_BOOTSTRAP_SERVERS};
use crate::error::{Error, Result};

/// librdkafka's mock cluster, running in this process until dropped.
pub struct EmbeddedCluster {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedCluster {
    /// Starts a cluster of `brokers` brokers on loopback ports.
    pub fn start(brokers: i32) -> Result<Self> {
        let cluster = MockCluster::new(brokers)
            .map_err(|e| Error::kafka("starting the embedded cluster", "", e))?;
        Ok(EmbeddedCluster { cluster })
    }

    /// The `bootstrap.servers` of the cluster.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// A client configuration pointing at the cluster.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(self.bootstrap_servers())
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        self.cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| Error::kafka("creating topic", topic, e))
    }
}

/// Where an example or a test finds its Kafka.
pub enum Cluster {
    /// An external cluster named by `KAFKA_BOOTSTRAP_SERVERS`.
    External(String),
    /// An embedded cluster started for this process.
    Embedded(EmbeddedCluster),
}

impl Cluster {
    /// The cluster of `KAFKA_BOOTSTRAP_SERVERS` when set, otherwise a new embedded
    /// one-broker cluster.
    pub fn from_env_or_embedded() -> Result<Self> {
        match std::env::var(ENV_BOOTSTRAP_SERVERS) {
            Ok(servers) if !servers.trim().is_empty() => Ok(Cluster::External(servers)),
            _ => Ok(Cluster::Embedded(EmbeddedCluster::start(1)?)),
        }
    }

    /// The `bootstrap.servers` to connect to.
    pub fn bootstrap_servers(&self) -> String {
        match self {
            Cluster::External(servers) => servers.clone(),
            Cluster::Embedded(cluster) => cluster.bootstrap_servers(),
        }
    }

    /// A client configuration for this cluster (with `KAFKA_*` security settings
    /// from the environment for an external one).
    pub fn client_config(&self) -> ClientConfig {
        match self {
            Cluster::External(servers) => {
                ClientConfig::from_env().unwrap_or_else(|_| ClientConfig::new(servers.clone()))
            }
            Cluster::Embedded(cluster) => cluster.client_config(),
        }
    }

    /// A one-line description for a program's first output line.
    pub fn describe(&self) -> String {
        match self {
            Cluster::External(servers) => format!("using Kafka at {servers} (KAFKA_BOOTSTRAP_SERVERS)"),
            Cluster::Embedded(cluster) => format!(
                "KAFKA_BOOTSTRAP_SERVERS is not set: using librdkafka's embedded mock cluster at {}",
                cluster.bootstrap_servers()
            ),
        }
    }

    /// The embedded cluster, if this is one (for topic creation).
    pub fn embedded(&self) -> Option<&EmbeddedCluster> {
        match self {
            Cluster::Embedded(cluster) => Some(cluster),
            Cluster::External(_) => None,
        }
    }
}
