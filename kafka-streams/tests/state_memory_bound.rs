//! Issue 6 acceptance, memory: ten RocksDB stores sharing one small block cache and
//! write-buffer budget keep RocksDB's reported cache usage within the configured
//! capacity, while the cache is really used by all of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kafka_streams::state::rocksdb::{BlockBasedOptions, Options};
use kafka_streams::state::{
    ChangelogPartition, KeyValueStore, ReadOnlyKeyValueStore, RocksDbConfigSetter, RocksDbMemory,
    RocksDbMemoryConfig, RocksDbStore, StoreLocation,
};

const STORES: usize = 10;
const KEYS_PER_STORE: u32 = 20_000;
const VALUE_SIZE: usize = 100;
const CACHE_BYTES: usize = 4 << 20;
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Counts the stores it configured, to show the per-store hook runs.
struct CountingSetter(AtomicUsize);

impl RocksDbConfigSetter for CountingSetter {
    fn set_config(&self, _store: &str, options: &mut Options, _table: &mut BlockBasedOptions) {
        self.0.fetch_add(1, Ordering::SeqCst);
        // Small memtables so that data reaches SST files and reads use the block cache.
        options.set_write_buffer_size(256 << 10);
    }
}

fn key(i: u32) -> [u8; 8] {
    // Spread keys so that consecutive writes land in different blocks.
    (u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes()
}

#[test]
fn ten_stores_share_a_bounded_block_cache() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let setter = Arc::new(CountingSetter(AtomicUsize::new(0)));
    let memory = RocksDbMemory::new(RocksDbMemoryConfig {
        total_bytes: CACHE_BYTES,
        write_buffer_bytes: WRITE_BUFFER_BYTES,
    })?
    .with_config_setter(setter.clone());

    let mut stores = Vec::new();
    for s in 0..STORES {
        let loc = StoreLocation {
            state_dir: dir.path().to_path_buf(),
            application_id: "plant-sensors".into(),
            task: format!("0_{s}"),
            store: "latest".into(),
        };
        let changelog = ChangelogPartition {
            topic: "plant-sensors-latest-changelog".into(),
            partition: s as i32,
        };
        stores.push(RocksDbStore::open(&loc, Some(changelog), &memory)?);
    }
    assert_eq!(setter.0.load(Ordering::SeqCst), STORES);

    let value = vec![0x5a_u8; VALUE_SIZE];
    let mut peak = 0usize;
    for store in stores.iter_mut() {
        for chunk in (0..KEYS_PER_STORE).collect::<Vec<_>>().chunks(500) {
            let batch: Vec<_> = chunk
                .iter()
                .map(|&i| (key(i).to_vec(), Some(value.clone())))
                .collect();
            store.put_all(&batch)?;
            peak = peak.max(memory.block_cache_usage());
        }
        store.flush()?;
    }
    let written_bytes = STORES * KEYS_PER_STORE as usize * (8 + VALUE_SIZE);
    assert!(
        written_bytes > 5 * CACHE_BYTES,
        "the data must not fit in the cache"
    );

    // Read everything back, twice, through the shared cache.
    for _ in 0..2 {
        for store in &stores {
            for i in (0..KEYS_PER_STORE).step_by(3) {
                let got = store.get(&key(i))?;
                assert_eq!(got.as_deref(), Some(value.as_slice()));
                peak = peak.max(memory.block_cache_usage());
            }
        }
    }

    let usage = memory.block_cache_usage();
    let per_db: Vec<u64> = stores
        .iter()
        .map(|s| {
            s.property_int("rocksdb.block-cache-usage")
                .map(|v| v.unwrap_or(0))
        })
        .collect::<Result<_, _>>()?;
    eprintln!(
        "block cache: capacity {CACHE_BYTES} B, usage now {usage} B, peak {peak} B, \
         pinned {} B, memtables {} B, per-store property {:?}, data written {written_bytes} B",
        memory.block_cache_pinned_usage(),
        memory.write_buffer_usage(),
        per_db
    );
    assert!(
        peak <= CACHE_BYTES,
        "peak usage {peak} exceeds capacity {CACHE_BYTES}"
    );
    // Every store reports the one shared cache.
    for reported in &per_db {
        assert!(*reported as usize <= CACHE_BYTES, "{reported}");
        assert!(
            *reported as usize >= CACHE_BYTES / 2,
            "store not using the shared cache: {reported}"
        );
    }
    // The cache is really used (not bypassed by per-store caches): it is mostly full,
    // and not only with memtable reservations but with the blocks the reads loaded.
    assert!(
        usage >= CACHE_BYTES / 2,
        "usage {usage} suggests the shared cache is not used"
    );
    let blocks = usage.saturating_sub(memory.write_buffer_usage());
    assert!(
        blocks >= CACHE_BYTES / 4,
        "only {blocks} B of blocks in the shared cache: reads bypass it"
    );
    // Memtables are charged to the same cache: they are inside the bound.
    assert!(memory.write_buffer_usage() > 0);
    assert!(
        usage >= memory.write_buffer_usage(),
        "memtables ({} B) are not charged to the cache ({usage} B)",
        memory.write_buffer_usage()
    );
    Ok(())
}
