//! The sharded map: a fixed hash, copy-on-write of exactly the written shard, sorted views and
//! the bulk build used by restore.

use super::*;

type Map = Sharded<Vec<u8>, u32, 6>;

/// `shard_hash(b"foobar")`, pinned (checked independently: FNV-1a then fmix64 in Python).
const PINNED_FOOBAR: u64 = 0x2c22_1949_22d1_672b;

/// Shards whose `Arc` differs between a map and a frozen copy of it: what writes copied.
fn copied<K, V, const BITS: u32>(map: &Sharded<K, V, BITS>, frozen: &Sharded<K, V, BITS>) -> usize
where
    K: Ord + Clone + ShardKey,
    V: Clone,
{
    map.shards().iter().zip(frozen.shards()).filter(|(a, b)| !Arc::ptr_eq(a, b)).count()
}

#[test]
fn the_shard_hash_is_fixed_and_does_not_depend_on_the_process() {
    // Published FNV-1a 64 test vectors, and pinned values of the whole hash: a change of
    // hash is a deliberate change, not an accident (a key's shard must be the same in every
    // process and build, or equal stores would compare unequal).
    assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(b"foobar"[..].shard_hash(), b"foobar".to_vec().shard_hash(), "a Vec is looked up by its slice");
    assert_eq!(b"foobar"[..].shard_hash(), PINNED_FOOBAR);
    assert_eq!(7u64.shard_hash(), 7u64.wrapping_mul(0x9e37_79b9_7f4a_7c15));
}

#[test]
fn consecutive_keys_and_client_ids_spread_over_the_shards() {
    // Shard sizes decide the cost of the first write to a shard after a snapshot, so no shard
    // may collect much more than its share (with 64 shards and 64,000 keys: 1,000 each).
    let mut keys = vec![0usize; 64];
    let mut ids = vec![0usize; 64];
    for i in 0..64_000u64 {
        keys[Map::shard_of(format!("key{i}").as_bytes())] += 1;
        ids[Sharded::<u64, (), 6>::shard_of(&(i + 1))] += 1;
    }
    for (what, counts) in [("keys", keys), ("client ids", ids)] {
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 850 && *max < 1150, "{what}: shard sizes from {min} to {max}");
    }
    // Short keys differing only in their last bytes (plain FNV-1a put these in one shard).
    let shards: std::collections::BTreeSet<usize> =
        (0..1000u32).map(|i| Map::shard_of(i.to_be_bytes().as_slice())).collect();
    assert_eq!(shards.len(), 64);
}

#[test]
fn a_write_after_a_freeze_copies_only_the_shard_it_writes() {
    let mut map = Map::new();
    for i in 0..1000u32 {
        map.insert(i.to_be_bytes().to_vec(), i);
    }
    let frozen = map.clone();
    assert_eq!(copied(&map, &frozen), 0, "a freeze copies nothing");

    // Reads and removals of absent keys write nothing.
    assert_eq!(map.get(b"absent".as_slice()), None);
    assert_eq!(map.remove(b"absent".as_slice()), None);
    assert_eq!(copied(&map, &frozen), 0);

    map.insert(7u32.to_be_bytes().to_vec(), 70);
    assert_eq!(copied(&map, &frozen), 1);
    // Further writes to the same shard copy nothing more: it is no longer shared.
    let shard = Map::shard_of(7u32.to_be_bytes().as_slice());
    let same_shard = (0..1000u32).find(|i| *i != 7 && Map::shard_of(i.to_be_bytes().as_slice()) == shard).unwrap();
    let before = Arc::as_ptr(&map.shards()[shard]);
    map.remove(same_shard.to_be_bytes().as_slice());
    assert_eq!(Arc::as_ptr(&map.shards()[shard]), before, "an unshared shard is written in place");
    assert_eq!(copied(&map, &frozen), 1);
    let other = (0..1000u32).find(|i| Map::shard_of(i.to_be_bytes().as_slice()) != shard).unwrap();
    map.remove(other.to_be_bytes().as_slice());
    assert_eq!(copied(&map, &frozen), 2);

    // The frozen copy still has what it had.
    assert_eq!(frozen.len(), 1000);
    assert_eq!(frozen.get(7u32.to_be_bytes().as_slice()), Some(&7));
    assert_eq!(frozen.get(same_shard.to_be_bytes().as_slice()), Some(&same_shard));
    assert_eq!(map.len(), 998);
    assert_eq!(map.get(7u32.to_be_bytes().as_slice()), Some(&70));
}

#[test]
fn sorted_is_in_key_order_whatever_the_shards_and_the_prefixes() {
    // Keys that share and differ in their 8-byte prefix, shorter and longer than it, and
    // with zero bytes where the prefix pads with zeros.
    let keys: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\0".to_vec(),
        b"\0\0\0\0\0\0\0\0".to_vec(),
        b"\0\0\0\0\0\0\0\0\0".to_vec(),
        b"a".to_vec(),
        b"a\0".to_vec(),
        b"a\0\x01".to_vec(),
        b"abcdefgh".to_vec(),
        b"abcdefgh\0".to_vec(),
        b"abcdefgha".to_vec(),
        b"abcdefghb".to_vec(),
        b"abcdefgi".to_vec(),
        vec![0xff; 3],
        vec![0xff; 12],
    ];
    let mut map = Map::new();
    for (i, key) in keys.iter().enumerate().rev() {
        map.insert(key.clone(), i as u32);
    }
    let sorted: Vec<&Vec<u8>> = map.sorted().into_iter().map(|(key, _)| key).collect();
    let mut expected: Vec<&Vec<u8>> = keys.iter().collect();
    expected.sort();
    assert_eq!(sorted, expected);
    assert_eq!(format!("{map:?}"), format!("{:?}", keys.iter().zip(0u32..).collect::<BTreeMap<_, _>>()));
}

#[test]
fn from_sorted_builds_the_same_map_as_inserting() {
    let mut inserted = Map::new();
    let entries: Vec<(Vec<u8>, u32)> = (0..5000u32).map(|i| (format!("{i:05}").into_bytes(), i)).collect();
    for (key, value) in entries.iter().rev() {
        inserted.insert(key.clone(), *value);
    }
    let built = Map::from_sorted(entries.clone());
    assert_eq!(built, inserted);
    assert_eq!(built.len(), 5000);
    assert_eq!(built.get(b"04999".as_slice()), Some(&4999));
    assert_eq!(Map::from_sorted(Vec::new()), Map::new());
}
