//! `topology.optimization` `reuse.ktable.source.topics` without a broker: which
//! stores the topology marks as source tables, how such a store opens (no
//! change-logging layer, the source partition as its changelog), and, through the
//! test driver, that a source table then writes no changelog records and checkpoints
//! the committed input offset, while other stores are logged as before.

use kafka_client::serde::StringSerde;
use kafka_client::ClientConfig;
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::processor::TaskId;
use kafka_streams::runtime::{StreamsConfig, TopologyOptimization};
use kafka_streams::state::{
    ChangelogPartition, ChangelogWriter, KeyValueStoreBuilder, RocksDbMemory, RocksDbStore,
    StateStore, StoreBuilder, StoreContext, StoreLocation, StoreRecovery, TimestampedKeyValueStore,
    TypedKeyValueStore,
};
use kafka_streams::test_driver::TopologyTestDriver;
use kafka_streams::Topology;

type R = anyhow::Result<()>;

fn s(v: &str) -> String {
    v.to_owned()
}

#[test]
fn topology_lists_the_logged_source_tables_and_their_topics() -> R {
    let builder = StreamsBuilder::new();
    builder.table_with::<String, String>("plants", Materialized::as_("plants-latest"));
    let sensors = builder.table::<String, i64>("sensors");
    // Not source tables that can reuse their topic: logging disabled, a value serde
    // of its own (the topic is read with the default one), a global table, an
    // aggregation, a table derived from a table.
    builder.table_with::<String, String>(
        "scratch",
        Materialized::as_("scratch-latest").with_logging_disabled(),
    );
    builder.table_with::<String, String>(
        "recoded",
        Materialized::as_("recoded-latest").with_value_serde(std::sync::Arc::new(StringSerde)),
    );
    builder.global_table_with::<String, String>("regions", Materialized::as_("regions-all"));
    builder
        .stream::<String, String>("events")
        .group_by_key()
        .count_with(Materialized::as_("event-counts"));
    sensors
        .filter(|_, v| *v > 0)
        .map_values(|v| v * 2)
        .to_stream()
        .to("doubled");
    // Without the optimization no store uses its source topic as changelog.
    assert_eq!(builder.build()?.source_table_stores().count(), 0);
    let topology = builder.build_with(TopologyOptimization::REUSE_KTABLE_SOURCE_TOPICS)?;

    let sensors_store = topology
        .describe()
        .subtopologies
        .iter()
        .flat_map(|sub| sub.nodes.iter())
        .find_map(|node| match &node.kind {
            kafka_streams::topology::NodeKind::Processor { stores }
                if node.name.starts_with("KTABLE-SOURCE-") =>
            {
                stores
                    .iter()
                    .find(|s| s.starts_with("sensors-STATE-STORE-"))
                    .cloned()
            }
            _ => None,
        })
        .expect("the sensors table's generated store name");
    let mut listed: Vec<(String, String)> = topology
        .source_table_stores()
        .map(|(store, topic)| (store.to_owned(), topic.to_owned()))
        .collect();
    listed.sort();
    let mut expected = vec![
        (s("plants-latest"), s("plants")),
        (sensors_store, s("sensors")),
    ];
    expected.sort();
    assert_eq!(listed, expected);
    Ok(())
}

/// Counts the changelog records the stores send.
#[derive(Clone, Default)]
struct CountingChangelogWriter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl CountingChangelogWriter {
    fn new() -> Self {
        Self::default()
    }

    /// How many records were sent.
    fn sent(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl ChangelogWriter for CountingChangelogWriter {
    fn send(
        &self,
        _topic: &str,
        _partition: i32,
        _key: &[u8],
        _value: Option<&[u8]>,
    ) -> Result<(), kafka_client::serde::BoxError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

fn context(dir: &std::path::Path, writer: &CountingChangelogWriter) -> StoreContext {
    StoreContext::new(
        "tables",
        dir,
        TaskId {
            subtopology: 0,
            partition: 3,
        },
    )
    .with_changelog_writer(std::sync::Arc::new(writer.clone()))
    .with_rocksdb(RocksDbMemory::default_shared())
}

fn typed(store: &mut Box<dyn StateStore>) -> &mut TypedKeyValueStore<String, String> {
    store
        .as_any_mut()
        .downcast_mut::<TypedKeyValueStore<String, String>>()
        .expect("typed store")
}

#[test]
fn store_with_a_source_topic_changelog_is_not_logged_and_checkpoints_against_it() -> R {
    let dir = tempfile::tempdir()?;
    let writer = CountingChangelogWriter::new();
    let ctx = context(dir.path(), &writer).with_source_topic_changelog("plants");
    let source = ChangelogPartition {
        topic: s("plants"),
        partition: 3,
    };

    let builder = KeyValueStoreBuilder::<String, String>::new("plants-latest");
    let mut store = builder.build(ctx.task)?;
    store.init(&ctx)?;
    assert_eq!(
        store.persistence().and_then(|p| p.changelog()),
        Some(&source)
    );
    typed(&mut store).put(&s("p1"), &s("fern"))?;
    typed(&mut store).delete(&s("p1"))?;
    typed(&mut store).put(&s("p2"), &s("moss"))?;
    store.flush()?;
    assert!(writer.sent() == 0, "the source topic is the changelog");
    let persistence = store.persistence().expect("restorable store");
    persistence.checkpoint(17)?;
    store.close()?;

    // On disk the checkpoint is the source partition's: reopening with it resumes, and
    // opening as an ordinarily logged store (the option turned off) wipes the state.
    let location = StoreLocation {
        state_dir: dir.path().to_path_buf(),
        application_id: s("tables"),
        task: s("0_3"),
        store: s("plants-latest"),
    };
    let memory = RocksDbMemory::default_shared();
    let reopened = RocksDbStore::open(&location, Some(source), &memory)?;
    assert_eq!(reopened.recovery(), &StoreRecovery::Resumed { offset: 17 });
    drop(reopened);
    let own_changelog = ChangelogPartition {
        topic: s("tables-plants-latest-changelog"),
        partition: 3,
    };
    let wiped = RocksDbStore::open(&location, Some(own_changelog), &memory)?;
    assert!(
        matches!(wiped.recovery(), StoreRecovery::Wiped { .. }),
        "{:?}",
        wiped.recovery()
    );
    drop(wiped);

    // A store with logging disabled has no changelog, source topic or not.
    let unlogged = KeyValueStoreBuilder::<String, String>::new("scratch").with_logging_disabled();
    let mut store = unlogged.build(ctx.task)?;
    store.init(&ctx)?;
    assert_eq!(store.persistence().and_then(|p| p.changelog()), None);
    Ok(())
}

/// A table of `plants`, its updates written to `plants-out`, and a count per value
/// (an aggregation store with its own changelog).
fn plants_topology(optimization: TopologyOptimization) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    let plants = builder.table_with::<String, String>("plants", Materialized::as_("plants-latest"));
    plants.to_stream().to("plants-out");
    plants
        .group_by(|_, kind| (kind.clone(), kind.clone()))
        .count_with(Materialized::as_("plants-per-kind"));
    Ok(builder.build_with(optimization)?)
}

fn driver(optimization: Option<&str>) -> anyhow::Result<TopologyTestDriver> {
    let mut config = StreamsConfig::new("garden", ClientConfig::new("test-driver:9092"));
    if let Some(value) = optimization {
        config = config.set("topology.optimization", value)?;
    }
    let topology = plants_topology(config.get_topology_optimization())?;
    Ok(TopologyTestDriver::with_config(topology, config)?)
}

fn pipe_plants(driver: &TopologyTestDriver) -> R {
    let input = driver.create_input_topic::<String, Option<String>>("plants");
    input.pipe_input(s("p1"), Some(s("fern")))?;
    input.pipe_input(s("p2"), Some(s("moss")))?;
    input.pipe_input(s("p1"), Some(s("moss")))?;
    input.pipe_input(s("p2"), None)?;
    input.pipe_input(s("p3"), Some(s("fern")))?;
    Ok(())
}

fn plants_changelog(driver: &TopologyTestDriver) -> Option<ChangelogPartition> {
    driver
        .with_state_store::<TimestampedKeyValueStore<String, String>, _>("plants-latest", |s| {
            s.changelog().cloned()
        })
        .flatten()
}

fn plants_checkpoint(driver: &TopologyTestDriver) -> Option<i64> {
    driver
        .with_state_store::<TimestampedKeyValueStore<String, String>, _>("plants-latest", |s| {
            s.bytes().ok().and_then(|b| b.checkpointed_offset())
        })
        .flatten()
}

#[test]
fn reused_source_topic_writes_no_changelog_and_checkpoints_the_committed_offset() -> R {
    for value in ["reuse.ktable.source.topics", "all"] {
        let driver = driver(Some(value))?;
        pipe_plants(&driver)?;

        let store = driver
            .key_value_store::<String, String>("plants-latest")
            .ok_or_else(|| anyhow::anyhow!("no store"))?;
        assert_eq!(
            store.all()?,
            vec![(s("p1"), s("moss")), (s("p3"), s("fern"))]
        );
        let out = driver.create_output_topic::<String, Option<String>>("plants-out");
        assert_eq!(
            out.read_key_values_to_list()?,
            vec![
                (s("p1"), Some(s("fern"))),
                (s("p2"), Some(s("moss"))),
                (s("p1"), Some(s("moss"))),
                (s("p2"), None),
                (s("p3"), Some(s("fern"))),
            ]
        );
        let produced = driver.produced_topics();
        assert!(
            !produced.contains_key("garden-plants-latest-changelog"),
            "{value}: the table's store is not logged: {produced:?}"
        );
        // The aggregation downstream keeps its own changelog.
        assert!(
            produced.contains_key("garden-plants-per-kind-changelog"),
            "{value}: {produced:?}"
        );
        let counts = driver
            .key_value_store::<String, i64>("plants-per-kind")
            .ok_or_else(|| anyhow::anyhow!("no count store"))?;
        assert_eq!(counts.all()?, vec![(s("fern"), 1), (s("moss"), 1)]);

        // Its changelog is the source partition, checkpointed at the committed offset.
        assert_eq!(
            plants_changelog(&driver),
            Some(ChangelogPartition {
                topic: s("plants"),
                partition: 0
            })
        );
        let committed = driver
            .committed_offsets()
            .get(&kafka_client::TopicPartition::new("plants", 0))
            .copied();
        assert_eq!(committed, Some(5));
        assert_eq!(plants_checkpoint(&driver), committed, "{value}");
    }
    Ok(())
}

#[test]
fn without_the_optimization_the_table_is_logged_as_before() -> R {
    for value in [None, Some("none"), Some("merge.repartition.topics")] {
        let driver = driver(value)?;
        pipe_plants(&driver)?;
        assert_eq!(
            plants_changelog(&driver),
            Some(ChangelogPartition {
                topic: s("garden-plants-latest-changelog"),
                partition: 0
            })
        );
        let changelog =
            driver.create_output_topic::<String, Option<String>>("garden-plants-latest-changelog");
        let logged = changelog.read_key_values_to_map()?;
        assert_eq!(logged.get("p1"), Some(&Some(s("moss"))), "{value:?}");
        assert_eq!(logged.get("p2"), Some(&None), "{value:?}: tombstone logged");
        // The driver's collector acknowledges no offsets, so a logged store has no
        // checkpoint here; only a source-topic changelog checkpoints from the input.
        assert_eq!(plants_checkpoint(&driver), None, "{value:?}");
    }
    Ok(())
}

#[test]
fn the_typed_setting_is_what_the_property_sets() -> R {
    let typed = StreamsConfig::new("garden", ClientConfig::new("test-driver:9092"))
        .topology_optimization(TopologyOptimization::REUSE_KTABLE_SOURCE_TOPICS);
    let topology = plants_topology(typed.get_topology_optimization())?;
    let driver = TopologyTestDriver::with_config(topology, typed)?;
    pipe_plants(&driver)?;
    assert!(!driver
        .produced_topics()
        .contains_key("garden-plants-latest-changelog"));
    assert_eq!(plants_checkpoint(&driver), Some(5));
    Ok(())
}
