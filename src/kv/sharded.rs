//! A map split into a fixed number of copy-on-write shards, so that freezing it for a snapshot
//! costs one `Arc` clone per shard and the first write to a shard after that copies only that
//! shard (see [`KvStore`](super::KvStore) for why and for measured figures).
//!
//! A key's shard is chosen by a fixed hash of its bytes (FNV-1a with a finalizer for byte
//! strings, Fibonacci hashing for integers), never by a `RandomState`: the same key lands in the same shard in
//! every store, process and build, so two maps with the same contents have equal shards and
//! comparing them shard by shard is comparing their contents.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// What a sharded map needs of its keys (implemented alike for a key type and the type it
/// is looked up by, as `Hash` is for `Borrow`).
pub(crate) trait ShardKey {
    /// A fixed, process-independent hash used only to pick a shard; its top bits choose the
    /// shard, so they must be well mixed.
    fn shard_hash(&self) -> u64;

    /// A number whose order agrees with the key order where it differs (a < b whenever
    /// prefix(a) < prefix(b)): sorting by it first leaves the full comparison, which reads
    /// the key from wherever it is in memory, to ties.
    fn sort_prefix(&self) -> u64;
}

impl ShardKey for [u8] {
    /// 64-bit FNV-1a, then MurmurHash3's 64-bit finalizer. FNV-1a alone mixes its top bits,
    /// which pick the shard, poorly: the last bytes of a key reach only the low ~50 bits
    /// (all 4-byte big-endian counters below 1000 fell in one of 64 shards). The finalizer
    /// folds every bit into every other.
    fn shard_hash(&self) -> u64 {
        let mut hash = fnv1a_64(self);
        hash = (hash ^ (hash >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash = (hash ^ (hash >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }

    /// The first 8 bytes, big endian, padded with zeros. Zero is the smallest byte, so a key
    /// shorter than 8 bytes gets a prefix no larger than any key it is a prefix of.
    fn sort_prefix(&self) -> u64 {
        let mut first = [0u8; 8];
        let n = self.len().min(8);
        first[..n].copy_from_slice(&self[..n]);
        u64::from_be_bytes(first)
    }
}

/// 64-bit FNV-1a (the published offset basis and prime).
fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &byte in bytes {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl ShardKey for Vec<u8> {
    /// The same as for the slice, so that a lookup by `&[u8]` finds what `Vec<u8>` inserted.
    fn shard_hash(&self) -> u64 {
        self.as_slice().shard_hash()
    }

    fn sort_prefix(&self) -> u64 {
        self.as_slice().sort_prefix()
    }
}

impl ShardKey for u64 {
    /// Fibonacci hashing: client ids may be small consecutive integers, and multiplying by
    /// 2^64 / φ spreads them over the top bits.
    fn shard_hash(&self) -> u64 {
        self.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// The key itself: the comparison never needs a tie-break.
    fn sort_prefix(&self) -> u64 {
        *self
    }
}

/// A map of `K` to `V` in `2^BITS` shards, each a `BTreeMap` behind an `Arc`.
///
/// `Clone` is shallow (one `Arc` clone per shard) and is how a snapshot freezes the map: both
/// copies then share every shard until one of them writes to it. Equality compares contents.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Sharded<K, V, const BITS: u32> {
    shards: Vec<Arc<BTreeMap<K, V>>>,
    /// Entries over all shards, kept so that `len` does not visit every shard.
    len: usize,
}

impl<K: Ord + Clone + ShardKey, V: Clone, const BITS: u32> Sharded<K, V, BITS> {
    /// Number of shards.
    pub(crate) const SHARDS: usize = {
        assert!(BITS >= 1 && BITS <= 24, "between 2 and 16 M shards");
        1 << BITS
    };

    /// An empty map. Every shard starts as the same empty `Arc`, so an empty store is one
    /// allocation plus the vector, not one per shard (tests and restores build many).
    pub(crate) fn new() -> Self {
        let empty = Arc::new(BTreeMap::new());
        Self { shards: (0..Self::SHARDS).map(|_| Arc::clone(&empty)).collect(), len: 0 }
    }

    fn shard_of<Q: ShardKey + ?Sized>(key: &Q) -> usize {
        (key.shard_hash() >> (64 - BITS)) as usize
    }

    /// Entries in the map.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value of `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ShardKey + ?Sized,
    {
        self.shards[Self::shard_of(key)].get(key)
    }

    /// Sets `key` to `value`, returning the old value. Copies the key's shard if a snapshot
    /// still shares it.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = Arc::make_mut(&mut self.shards[Self::shard_of(&key)]).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`, returning its value. An absent key copies nothing: a delete of a missing
    /// key after a snapshot costs no more than a read.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ShardKey + ?Sized,
    {
        let shard = &mut self.shards[Self::shard_of(key)];
        if !shard.contains_key(key) {
            return None;
        }
        let old = Arc::make_mut(shard).remove(key);
        self.len -= 1;
        old
    }

    /// Every entry, in no particular order across shards (each shard in key order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }

    /// Every entry in ascending key order. Allocates and sorts: for snapshots (off the loop
    /// thread) and `Debug`, not for the write path.
    pub(crate) fn sorted(&self) -> Vec<(&K, &V)> {
        let mut entries: Vec<(u64, &K, &V)> = Vec::with_capacity(self.len);
        entries.extend(self.iter().map(|(key, value)| (key.sort_prefix(), key, value)));
        // Keys are unique, so an unstable sort gives the one sorted order. Comparing the
        // cached prefixes first keeps the sort in this vector instead of chasing a pointer to
        // each key (measured for 1 M random 16-byte keys: about twice as fast, a job of 0.6-1.2 s
        // against 0.9-2.6 s without).
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        entries.into_iter().map(|(_, key, value)| (key, value)).collect()
    }

    /// A map of `entries`, which must be in strictly ascending key order (the caller checks:
    /// restore validates the order before building). Each shard is bulk-built from its keys,
    /// which arrive in order, instead of inserting one key at a time into shards all over
    /// memory.
    pub(crate) fn from_sorted(entries: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut buckets: Vec<Vec<(K, V)>> = (0..Self::SHARDS).map(|_| Vec::new()).collect();
        let mut len = 0;
        for (key, value) in entries {
            buckets[Self::shard_of(&key)].push((key, value));
            len += 1;
        }
        let empty = Arc::new(BTreeMap::new());
        let shards = buckets
            .into_iter()
            .map(|bucket| if bucket.is_empty() { Arc::clone(&empty) } else { Arc::new(BTreeMap::from_iter(bucket)) })
            .collect();
        Self { shards, len }
    }

    /// The shards, for tests that check what a write copied.
    #[cfg(test)]
    pub(crate) fn shards(&self) -> &[Arc<BTreeMap<K, V>>] {
        &self.shards
    }
}

impl<K: Ord + Clone + ShardKey, V: Clone, const BITS: u32> Default for Sharded<K, V, BITS> {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints the entries as one map in key order, as a single `BTreeMap` would: how the keys are
/// spread over shards is not part of the contents.
impl<K: Ord + Clone + ShardKey + fmt::Debug, V: Clone + fmt::Debug, const BITS: u32> fmt::Debug
    for Sharded<K, V, BITS>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.sorted()).finish()
    }
}

#[cfg(test)]
#[path = "sharded_tests.rs"]
mod tests;
