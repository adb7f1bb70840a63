//! A cache of RocksDB point lookups in front of the engine: key metadata
//! (which holds a string's value) and hash fields.
//!
//! Every string or hash command reads its key's metadata first, writes
//! included (the key count, the old TTL and the type across engines depend
//! on it), and a RocksDB Get — memtable, bloom filters, index and data
//! blocks — costs as much as the rest of the command. The cache holds the
//! answer, absence included, for recently used keys.
//!
//! The cache is also where writes wait for RocksDB (write-back, see
//! `RocksEngine::write`): a write replaces the cached answer at once,
//! tagged with its batch's generation, and an entry whose batch RocksDB
//! does not hold yet (a generation above `applied`) is never evicted, so
//! a lookup that misses can always read RocksDB. A fill from RocksDB is
//! dropped if any write reached the same cache shard while it read, so a
//! slow fill never puts back a value a write has replaced. Entries are
//! evicted by sampled LRU once a shard is over its share of the budget.
//!
//! Hot entries are also copied to the reading thread (`Recent`): clients
//! reading one key from every core otherwise meet at its shard's lock,
//! whose cache line moved between cores on every lookup (most of HGET's
//! lookup time on one hot field). A copy is good while its shard's write
//! epoch is the one it was copied at; reading that epoch writes nothing.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::Mutex;

use crate::rocks::Cf;

const SHARDS: usize = 64;
/// Bytes an entry costs beyond its key and value: the table's slot and
/// control byte, the allocation's header.
const ENTRY_OVERHEAD: usize = 64;
/// Entries looked at to choose one to evict (as Redis's maxmemory-samples).
const EVICTION_SAMPLES: usize = 5;

/// Copies of hot entries each thread keeps (see `Recent`).
const RECENT_SLOTS: usize = 64;
/// Entries up to this size (key and value) are copied to threads.
const RECENT_MAX_BYTES: usize = 256;
/// An entry looked up again within this many lookups of its shard is hot.
const HOT_WITHIN: u64 = 16;
/// Hits on copies are added to the cache's count this many at a time.
const RECENT_HITS_BATCH: u64 = 64;

type FixedHasher = foldhash::fast::FixedState;

/// Numbers each `RowCache`, so that a thread's copies are never taken for
/// another cache's (tests open many engines in one process).
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static RECENT: RefCell<Recent> = const { RefCell::new(Recent { slots: Vec::new(), hits: (0, 0) }) };
}

/// Whether lookups in this column family are cached: the ones commands
/// read a key at a time (the others are scanned or read once at start).
pub fn cached(cf: Cf) -> bool {
    matches!(cf, Cf::Meta | Cf::Sub)
}

/// One cached answer, held in the table itself. The key and the value
/// share one allocation: a lookup of a key the processor's caches do not
/// hold waits for the table's control bytes, the slot and that block (an
/// index into a separate entry list, and a box each for key and value,
/// cost two more waits for memory, most of a GET's lookup).
struct Entry {
    hash: u64,
    /// The key's bytes, then the value's.
    bytes: Box<[u8]>,
    key_len: u32,
    cf: Cf,
    /// Whether the key exists (false: known absent, no value bytes).
    present: bool,
    last_used: u64,
    /// The generation of the batch that wrote it (0: read from RocksDB).
    generation: u64,
}

impl Entry {
    fn new(hash: u64, cf: Cf, key: &[u8], value: Option<&[u8]>, generation: u64) -> Entry {
        let bytes = [key, value.unwrap_or_default()].concat().into_boxed_slice();
        Entry { hash, bytes, key_len: key.len() as u32, cf, present: value.is_some(), last_used: 0, generation }
    }

    fn key(&self) -> &[u8] {
        &self.bytes[..self.key_len as usize]
    }

    fn value(&self) -> Option<&[u8]> {
        self.present.then(|| &self.bytes[self.key_len as usize..])
    }

    fn is(&self, hash: u64, cf: Cf, key: &[u8]) -> bool {
        self.hash == hash && self.cf == cf && self.key() == key
    }
}

#[derive(Default)]
struct Shard {
    table: HashTable<Entry>,
    bytes: usize,
    /// Lookup counter standing in for time in LRU order.
    clock: u64,
    rng: u64,
    hits: u64,
    misses: u64,
}

/// The answer to a lookup.
pub enum Lookup {
    /// The cached value (None: the key is known to be absent).
    Hit(Option<Vec<u8>>),
    /// Not cached: read RocksDB, then `fill` with this token.
    Miss(FillToken),
}

/// The shard's write epoch when a lookup missed.
pub struct FillToken(u64);

/// What one `RowCache` holds, for INFO.
pub struct RowCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes: u64,
    pub entries: u64,
}

pub struct RowCache {
    id: u64,
    /// Each on cache lines of its own: neighbouring shards' locks would
    /// otherwise bounce between cores that use different keys.
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    /// Each shard's write epoch, bumped (under its lock, before the
    /// change) by every write and clear: a fill or a thread's copy made at
    /// an older epoch may be stale. Apart from the locks, so that reading
    /// one does not wait for a lock's line.
    epochs: Box<[CachePadded<AtomicU64>]>,
    /// Hits on threads' copies (added `RECENT_HITS_BATCH` at a time).
    recent_hits: AtomicU64,
    shard_budget: usize,
    hasher: FixedHasher,
    /// Whether anything was cached since the last `clear` (replay at
    /// startup writes batches without their keys at hand; it only needs to
    /// clear a cache something was put in).
    populated: AtomicBool,
    /// Every batch up to this generation is in RocksDB.
    applied: AtomicU64,
}

impl RowCache {
    /// A cache of at most about `budget` bytes (0 turns it off).
    pub fn new(budget: usize) -> RowCache {
        let shards = (0..SHARDS)
            .map(|i| {
                CachePadded::new(Mutex::new(Shard { rng: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1), ..Shard::default() }))
            })
            .collect();
        RowCache {
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            shards,
            epochs: (0..SHARDS).map(|_| CachePadded::new(AtomicU64::new(0))).collect(),
            recent_hits: AtomicU64::new(0),
            shard_budget: budget / SHARDS,
            hasher: FixedHasher::default(),
            populated: AtomicBool::new(false),
            applied: AtomicU64::new(0),
        }
    }

    fn hash(&self, cf: Cf, key: &[u8]) -> u64 {
        self.hasher.hash_one((cf, key))
    }

    fn shard_index(&self, hash: u64) -> usize {
        // Middle bits: the table inside the shard finds its bucket by the
        // low bits and tells a bucket group's entries apart by the top 7.
        (hash >> 40) as usize % SHARDS
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        &self.shards[self.shard_index(hash)]
    }

    /// Bumps the write epoch of `hash`'s shard; the caller holds its lock.
    fn bump_epoch(&self, hash: u64) {
        self.epochs[self.shard_index(hash)].fetch_add(1, Ordering::Release);
    }

    fn epoch(&self, hash: u64) -> u64 {
        self.epochs[self.shard_index(hash)].load(Ordering::Acquire)
    }

    pub fn lookup(&self, cf: Cf, key: &[u8]) -> Lookup {
        let hash = self.hash(cf, key);
        if let Some(value) = self.recent_hit(hash, cf, key) {
            return Lookup::Hit(value);
        }
        let mut shard = self.shard(hash).lock();
        shard.clock += 1;
        let now = shard.clock;
        match shard.table.find_mut(hash, |e| e.is(hash, cf, key)) {
            Some(entry) => {
                let hot = now - entry.last_used <= HOT_WITHIN;
                entry.last_used = now;
                let value = entry.value().map(<[u8]>::to_vec);
                if hot && entry.bytes.len() <= RECENT_MAX_BYTES {
                    // Under the lock: the epoch is the entry's.
                    self.remember(entry, self.epoch(hash));
                }
                shard.hits += 1;
                Lookup::Hit(value)
            }
            None => {
                shard.misses += 1;
                Lookup::Miss(FillToken(self.epoch(hash)))
            }
        }
    }

    /// This thread's copy of the entry, if it has one still current.
    fn recent_hit(&self, hash: u64, cf: Cf, key: &[u8]) -> Option<Option<Vec<u8>>> {
        RECENT.with_borrow_mut(|recent| {
            let slot = recent.slots.get(hash as usize % RECENT_SLOTS)?;
            let entry = slot.entry.as_ref().filter(|e| slot.cache == self.id && e.is(hash, cf, key))?;
            if slot.epoch != self.epoch(hash) {
                return None;
            }
            let value = entry.value().map(<[u8]>::to_vec);
            recent.count_hit(self);
            Some(value)
        })
    }

    /// Copies a hot entry to this thread, as of write epoch `epoch`.
    fn remember(&self, entry: &Entry, epoch: u64) {
        RECENT.with_borrow_mut(|recent| {
            if recent.slots.is_empty() {
                recent.slots.resize_with(RECENT_SLOTS, RecentSlot::default);
            }
            let slot = &mut recent.slots[entry.hash as usize % RECENT_SLOTS];
            slot.cache = self.id;
            slot.epoch = epoch;
            slot.entry = Some(Entry { bytes: entry.bytes.clone(), ..*entry });
        });
    }

    /// Caches what RocksDB answered after `lookup` missed, unless a write
    /// reached the shard since.
    pub fn fill(&self, cf: Cf, key: &[u8], value: Option<&[u8]>, token: FillToken) {
        let hash = self.hash(cf, key);
        let mut shard = self.shard(hash).lock();
        if self.epoch(hash) == token.0 {
            self.insert(&mut shard, Entry::new(hash, cf, key, value, 0));
        }
    }

    /// Whether the cache can hold writes until RocksDB has them (it holds
    /// nothing at a zero budget).
    pub fn enabled(&self) -> bool {
        self.shard_budget > 0
    }

    /// Records a write (None: a delete) of the batch of `generation`:
    /// kept until `set_applied` says RocksDB holds that batch.
    pub fn update(&self, cf: Cf, key: &[u8], value: Option<&[u8]>, generation: u64) {
        let hash = self.hash(cf, key);
        let mut shard = self.shard(hash).lock();
        self.bump_epoch(hash);
        self.insert(&mut shard, Entry::new(hash, cf, key, value, generation));
    }

    /// RocksDB holds every batch up to `generation`: their entries may go.
    pub fn set_applied(&self, generation: u64) {
        self.applied.store(generation, Ordering::Release);
    }

    fn insert(&self, shard: &mut Shard, mut entry: Entry) {
        if self.shard_budget == 0 {
            return;
        }
        self.populated.store(true, Ordering::Relaxed);
        shard.clock += 1;
        entry.last_used = shard.clock;
        shard.bytes += entry.bytes.len() + ENTRY_OVERHEAD;
        let (hash, cf) = (entry.hash, entry.cf);
        match shard.table.find_mut(hash, |e| e.is(hash, cf, entry.key())) {
            Some(old) => shard.bytes -= std::mem::replace(old, entry).bytes.len() + ENTRY_OVERHEAD,
            None => {
                shard.table.insert_unique(hash, entry, |e| e.hash);
            }
        }
        let applied = self.applied.load(Ordering::Acquire);
        while shard.bytes > self.shard_budget && !shard.table.is_empty() {
            // Over budget while RocksDB catches up, rather than lose a write.
            let Some(victim) = shard.least_recently_used_sample(applied) else { break };
            let Ok(full) = shard.table.get_bucket_entry(victim) else { break };
            shard.bytes -= full.remove().0.bytes.len() + ENTRY_OVERHEAD;
        }
    }

    /// Forgets everything (after a range delete: FLUSHDB, FLUSHALL, with
    /// every write applied to RocksDB first).
    pub fn clear(&self) {
        for (shard, epoch) in self.shards.iter().zip(self.epochs.iter()) {
            let mut shard = shard.lock();
            epoch.fetch_add(1, Ordering::Release);
            shard.table = HashTable::new();
            shard.bytes = 0;
        }
        self.populated.store(false, Ordering::Relaxed);
    }

    pub fn is_populated(&self) -> bool {
        self.populated.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> RowCacheStats {
        let recent_hits = self.recent_hits.load(Ordering::Relaxed);
        let mut stats = RowCacheStats { hits: recent_hits, misses: 0, bytes: 0, entries: 0 };
        for shard in self.shards.iter() {
            let shard = shard.lock();
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.bytes += shard.bytes as u64;
            stats.entries += shard.table.len() as u64;
        }
        stats
    }
}

/// A thread's copies of hot entries, one slot per hash value modulo
/// `RECENT_SLOTS`, and its hits not yet added to their cache's count.
struct Recent {
    slots: Vec<RecentSlot>,
    /// (cache id, hits on that cache's copies not yet counted).
    hits: (u64, u64),
}

impl Recent {
    fn count_hit(&mut self, cache: &RowCache) {
        if self.hits.0 != cache.id {
            // Hits on another cache's copies are dropped: only tests read
            // several caches from one thread.
            self.hits = (cache.id, 0);
        }
        self.hits.1 += 1;
        if self.hits.1 == RECENT_HITS_BATCH {
            cache.recent_hits.fetch_add(RECENT_HITS_BATCH, Ordering::Relaxed);
            self.hits.1 = 0;
        }
    }
}

#[derive(Default)]
struct RecentSlot {
    /// The cache it was copied from.
    cache: u64,
    /// Its shard's write epoch when copied.
    epoch: u64,
    entry: Option<Entry>,
}

impl Shard {
    /// The bucket of the least recently used of a few random entries that
    /// RocksDB holds (written by a batch up to `applied`); None if the
    /// sample has none.
    fn least_recently_used_sample(&mut self, applied: u64) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        for _ in 0..EVICTION_SAMPLES {
            let (bucket, entry) = self.random_entry();
            if entry.generation <= applied && best.is_none_or(|(_, used)| entry.last_used < used) {
                best = Some((bucket, entry.last_used));
            }
        }
        best.map(|(bucket, _)| bucket)
    }

    /// A random full bucket (the table is not empty; at least one bucket
    /// in eight is full, so a few probes find one).
    fn random_entry(&mut self) -> (usize, &Entry) {
        let buckets = self.table.num_buckets() as u64;
        loop {
            // xorshift64: eviction needs spread, not quality.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let bucket = (self.rng % buckets) as usize;
            if let Some(entry) = self.table.get_bucket(bucket) {
                return (bucket, entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(cache: &RowCache, cf: Cf, key: &[u8]) -> Option<Option<Vec<u8>>> {
        match cache.lookup(cf, key) {
            Lookup::Hit(value) => Some(value),
            Lookup::Miss(_) => None,
        }
    }

    #[test]
    fn fills_updates_and_absence() {
        let cache = RowCache::new(1 << 20);
        let Lookup::Miss(token) = cache.lookup(Cf::Meta, b"k") else { panic!("empty cache hit") };
        cache.fill(Cf::Meta, b"k", None, token);
        assert_eq!(hit(&cache, Cf::Meta, b"k"), Some(None));
        assert_eq!(hit(&cache, Cf::Sub, b"k"), None, "column families are apart");
        cache.update(Cf::Meta, b"k", Some(b"v"), 0);
        assert_eq!(hit(&cache, Cf::Meta, b"k"), Some(Some(b"v".to_vec())));
        cache.update(Cf::Meta, b"k", None, 0);
        assert_eq!(hit(&cache, Cf::Meta, b"k"), Some(None));
        cache.clear();
        assert_eq!(hit(&cache, Cf::Meta, b"k"), None);
        assert!(!cache.is_populated());
    }

    #[test]
    fn a_fill_racing_a_write_is_dropped() {
        let cache = RowCache::new(1 << 20);
        let Lookup::Miss(token) = cache.lookup(Cf::Meta, b"k") else { panic!("empty cache hit") };
        // A write lands between the reader's RocksDB read and its fill.
        cache.update(Cf::Meta, b"k", Some(b"new"), 0);
        cache.fill(Cf::Meta, b"k", Some(b"old"), token);
        assert_eq!(hit(&cache, Cf::Meta, b"k"), Some(Some(b"new".to_vec())));
        // Also when the write's entry was evicted or cleared meanwhile.
        let Lookup::Miss(token) = cache.lookup(Cf::Meta, b"j") else { panic!("empty cache hit") };
        cache.clear();
        cache.fill(Cf::Meta, b"j", Some(b"old"), token);
        assert_eq!(hit(&cache, Cf::Meta, b"j"), None);
    }

    #[test]
    fn stays_within_budget_and_keeps_what_is_used() {
        let budget = SHARDS * 4096;
        let cache = RowCache::new(budget);
        let hot = b"hot".to_vec();
        cache.update(Cf::Meta, &hot, Some(&[7; 100]), 0);
        for i in 0..20_000u32 {
            // A new key, then the hot one again.
            cache.update(Cf::Meta, &i.to_be_bytes(), Some(&[1; 100]), 0);
            hit(&cache, Cf::Meta, &hot);
        }
        let stats = cache.stats();
        assert!(stats.bytes as usize <= budget, "{} bytes over a {budget} budget", stats.bytes);
        assert!(stats.entries > 100, "the cache holds entries: {}", stats.entries);
        assert_eq!(hit(&cache, Cf::Meta, &hot), Some(Some(vec![7; 100])), "a key read all along stays");
        let recount: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().table.iter().map(|e| e.bytes.len() + ENTRY_OVERHEAD).sum::<usize>())
            .sum();
        assert_eq!(recount as u64, stats.bytes, "the byte count matches the entries");
    }

    #[test]
    fn writes_rocksdb_does_not_hold_yet_are_never_evicted() {
        let budget = SHARDS * 4096;
        let cache = RowCache::new(budget);
        // Generations 1..=3000 wait for RocksDB; then the first 1000 land.
        for i in 1..=3000u64 {
            cache.update(Cf::Meta, &i.to_be_bytes(), Some(&[1; 100]), i);
        }
        for i in 1..=3000u64 {
            assert!(hit(&cache, Cf::Meta, &i.to_be_bytes()).is_some(), "write {i} was evicted");
        }
        assert!(cache.stats().bytes as usize > budget, "over budget rather than lose a write");
        cache.set_applied(1000);
        for i in 3001..=4000u64 {
            cache.update(Cf::Meta, &i.to_be_bytes(), Some(&[1; 100]), 0);
        }
        for i in 1001..=3000u64 {
            assert!(hit(&cache, Cf::Meta, &i.to_be_bytes()).is_some(), "write {i} was evicted");
        }
        let evicted = (1..=1000u64).filter(|i| hit(&cache, Cf::Meta, &i.to_be_bytes()).is_none()).count();
        assert!(evicted > 0, "applied writes are evicted once over budget");
    }

    /// Reads `key` until this thread holds a copy of it (it is hot).
    fn make_hot(cache: &RowCache, key: &[u8]) {
        for _ in 0..=HOT_WITHIN + 1 {
            hit(cache, Cf::Meta, key);
        }
        assert!(cache.recent_hit(cache.hash(Cf::Meta, key), Cf::Meta, key).is_some(), "copied to this thread");
    }

    #[test]
    fn a_threads_copy_of_a_hot_entry_goes_stale_with_any_write_to_its_shard() {
        let cache = std::sync::Arc::new(RowCache::new(1 << 20));
        cache.update(Cf::Meta, b"hot", Some(b"v1"), 0);
        make_hot(&cache, b"hot");
        // Written on another thread: the copy here must not answer.
        let writer = cache.clone();
        std::thread::spawn(move || writer.update(Cf::Meta, b"hot", Some(b"v2"), 0)).join().unwrap();
        assert_eq!(hit(&cache, Cf::Meta, b"hot"), Some(Some(b"v2".to_vec())));
        make_hot(&cache, b"hot");
        let writer = cache.clone();
        std::thread::spawn(move || writer.update(Cf::Meta, b"hot", None, 0)).join().unwrap();
        assert_eq!(hit(&cache, Cf::Meta, b"hot"), Some(None), "a delete");
        cache.update(Cf::Meta, b"hot", Some(b"v3"), 0);
        make_hot(&cache, b"hot");
        cache.clear();
        assert_eq!(hit(&cache, Cf::Meta, b"hot"), None, "cleared");
        // A fill does not change what a key holds: copies stay good.
        cache.update(Cf::Meta, b"hot", Some(b"v4"), 0);
        make_hot(&cache, b"hot");
        let Lookup::Miss(token) = cache.lookup(Cf::Meta, b"cold") else { panic!("cold key cached") };
        cache.fill(Cf::Meta, b"cold", None, token);
        let hits = cache.stats().hits;
        for _ in 0..RECENT_HITS_BATCH {
            assert_eq!(hit(&cache, Cf::Meta, b"hot"), Some(Some(b"v4".to_vec())));
        }
        assert_eq!(cache.stats().hits, hits + RECENT_HITS_BATCH, "hits on copies are counted");
    }

    #[test]
    fn copies_belong_to_their_cache() {
        let (a, b) = (RowCache::new(1 << 20), RowCache::new(1 << 20));
        a.update(Cf::Meta, b"k", Some(b"a"), 0);
        b.update(Cf::Meta, b"k", Some(b"b"), 0);
        make_hot(&a, b"k");
        assert_eq!(hit(&b, Cf::Meta, b"k"), Some(Some(b"b".to_vec())));
        assert_eq!(hit(&a, Cf::Meta, b"k"), Some(Some(b"a".to_vec())));
        assert_eq!(hit(&b, Cf::Sub, b"k"), None, "nor another family's");
    }

    #[test]
    fn zero_budget_caches_nothing() {
        let cache = RowCache::new(0);
        cache.update(Cf::Meta, b"k", Some(b"v"), 0);
        assert_eq!(hit(&cache, Cf::Meta, b"k"), None);
        assert!(!cache.enabled());
    }
}
