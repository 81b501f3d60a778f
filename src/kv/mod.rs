//! The built-in replicated key-value state machine, and the [`StateMachine`] trait that
//! library users implement for their own.
//!
//! Commands arrive as committed log entries, in log order, on every server; each returns a
//! response that the server hands to the client that proposed it. Duplicate detection
//! (thesis §6.3): every write carries a client id and a sequence number, and the store keeps
//! the last sequence number and response per client, so a retried write is applied once.

use crate::codec::{decode, encode};
use crate::core::LogIndex;
use crate::session::table::{SessionMap, SessionTable, Verdict};
use serde::{Deserialize, Serialize};
use sharded::Sharded;

/// What [`StateMachine::snapshot`] returns: run off the loop thread, it produces the snapshot
/// bytes of the state frozen when `snapshot` was called.
pub type SnapshotJob = Box<dyn FnOnce() -> Vec<u8> + Send>;

/// A deterministic state machine fed with committed commands.
///
/// - **Its state is rebuilt, not stored by it**: after a restart the server calls
///   [`restore`](StateMachine::restore) with its latest snapshot (if any) and then `apply`
///   with every committed entry after it, again; a follower far behind is sent a snapshot and
///   restored from it. So `apply` must be deterministic — the same commands in the same order
///   give the same state and responses on every server, every time — and have no side effects
///   outside the state (no I/O, clocks, randomness, global state).
/// - **Exactly-once needs client sessions** (thesis §6.3): a client that got no answer sends
///   the command again, so a command can be committed twice. Put a client id and a sequence
///   number in each command and keep the last of each client (with its response) in the state,
///   and in the snapshot, as [`KvStore`] does; then a retry is answered, not applied again.
///   For exactly-once without writing it yourself, wrap your state machine in
///   [`Sessions`](crate::session::Sessions) and propose with
///   [`SessionClient`](crate::session::SessionClient) (see [`crate::session`]).
/// - Reads without the log call [`query`](StateMachine::query) once the read index is applied.
pub trait StateMachine: Send {
    /// Apply the command committed at `index` and return the response for its proposer.
    /// Must be deterministic: every server applies the same commands in the same order and
    /// must reach the same state. Commands are never empty (empty entries are Raft no-ops
    /// and are not passed in).
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Vec<u8>;

    /// The whole state as of the last applied command, as a job that produces bytes that
    /// [`StateMachine::restore`] accepts. `snapshot` itself runs on the server's loop thread and
    /// must be quick (freeze a view: clone an `Arc`, copy-on-write); the job runs on another
    /// thread, after further commands may have been applied, and must still produce the state
    /// as of this call. A state machine that cannot freeze cheaply may serialize here and
    /// return `Box::new(move || bytes)`, at the cost of stalling the loop for that long.
    /// The bytes are what the server saves and sends as a snapshot (Raft §7: the snapshot replaces the log up to the last applied index, so it must
    /// hold everything the applied commands produced, including any duplicate-detection state).
    /// Must be deterministic: the same state gives the same bytes, so that servers can compare
    /// snapshots and a test can compare them byte for byte.
    ///
    /// There is deliberately no default implementation (nor for `restore`): a default that
    /// returned no state, or "unsupported", would let the runtime compact away the log that is
    /// the only other copy of the state, or leave a server unable to start from its own
    /// snapshot. A compile error when upgrading is cheaper than a lost state.
    fn snapshot(&self) -> SnapshotJob;

    /// Replaces the whole state with one produced by [`StateMachine::snapshot`] (on this
    /// server after a restart, or received from the leader, §7 InstallSnapshot). The bytes come
    /// from disk or the network, so they must be validated completely: any input must give
    /// `Ok` or an `Err` that names what is wrong, never a panic, and on `Err` the state must be
    /// left as it was.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;

    /// Answer a read-only `query` from the current state, for reads that cost no log entry
    /// (thesis §6.4: the server calls it once it has applied the read's read index, so the
    /// answer is linearizable). It must not change the state. `Err` names what is wrong with
    /// the query (it is client input). The default answers none: reads of such a state
    /// machine must be proposed through the log.
    fn query(&self, _query: &[u8]) -> Result<Vec<u8>, String> {
        Err("this state machine answers no queries: propose the read through the log".into())
    }
}

/// A boxed state machine is one (the node takes any state machine as a `Box<dyn …>`).
impl<S: StateMachine + ?Sized> StateMachine for Box<S> {
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Vec<u8> {
        (**self).apply(index, command)
    }

    fn snapshot(&self) -> SnapshotJob {
        (**self).snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        (**self).restore(snapshot)
    }

    fn query(&self, query: &[u8]) -> Result<Vec<u8>, String> {
        (**self).query(query)
    }
}

/// Largest key-value command accepted for decoding (bytes): the largest command a leader
/// appends ([`COMMAND_BYTES_MAX`](crate::core::COMMAND_BYTES_MAX)); bounds what a malformed
/// entry can make the state machine allocate.
pub const KV_COMMAND_BYTES_MAX: usize = crate::core::COMMAND_BYTES_MAX;

/// Largest key and value(s) of one key-value operation together, in bytes: 1.5 MiB
/// (1,572,864, etcd's default request limit). A `put`'s key plus value, a `cas`'s key plus
/// expected plus new value. The client refuses more before sending anything; the command's own
/// framing (46 bytes at most, a `Cas`) fits in the rest of [`KV_COMMAND_BYTES_MAX`].
pub const KV_DATA_BYTES_MAX: usize = 3 << 19;

const _: () = assert!(KV_DATA_BYTES_MAX + 64 <= KV_COMMAND_BYTES_MAX);

/// Client sessions remembered for duplicate detection; the least recently used is forgotten
/// beyond this, so memory stays bounded (a client idle that long gets `UnknownSession`-style
/// treatment: its retried write would apply again, the documented limit).
pub const SESSIONS_MAX: usize = 100_000;

impl KvOp {
    /// Bytes of key and value(s) it carries: what [`KV_DATA_BYTES_MAX`] bounds.
    pub fn data_len(&self) -> usize {
        match self {
            KvOp::Put { key, value } => key.len() + value.len(),
            KvOp::Get { key } | KvOp::Delete { key } => key.len(),
            KvOp::Cas { key, expected, new } => {
                key.len() + expected.as_ref().map_or(0, Vec::len) + new.as_ref().map_or(0, Vec::len)
            }
        }
    }
}

/// A key-value command: the operation plus its client session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCommand {
    /// The client's id (random per client process). 0 means "no session": no duplicate
    /// detection (fine for reads).
    pub client_id: u64,
    /// Per-client sequence number, increasing by one per new operation; a retry reuses it.
    pub seq: u64,
    /// What to do.
    pub op: KvOp,
}

/// The operations. Variants are only ever appended (they are on the wire and in the log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The new value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Read `key` (through the log, so linearizable).
    Get {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// Set `key` to `new` (None: delete) only if its current value is `expected` (None: absent).
    Cas {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The value the key must have now.
        expected: Option<Vec<u8>>,
        /// The value to store if it does.
        new: Option<Vec<u8>>,
    },
}

/// What an operation returns. Variants are only ever appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResponse {
    /// Put done.
    Done,
    /// Get: the value, or None if absent.
    Value(Option<Vec<u8>>),
    /// Delete: whether the key existed.
    Deleted {
        /// True if a value was removed.
        existed: bool,
    },
    /// Compare-and-set: whether it swapped, and the value now stored.
    Cas {
        /// True if the expected value matched and the new one was stored.
        swapped: bool,
        /// The key's value after the operation.
        current: Option<Vec<u8>>,
    },
    /// The command's sequence number is older than the client's last one: a very late retry,
    /// not applied.
    StaleSequence {
        /// The last sequence number applied for this client.
        last: u64,
    },
    /// The entry did not decode as a key-value command: not applied.
    BadCommand,
}

/// Data shards: 2^12 = 4096. With 1 M keys a shard holds about 244 of them, which is what the
/// first write to it after a snapshot copies.
const DATA_SHARD_BITS: u32 = 12;

/// The keys and values, in copy-on-write shards.
type Data = Sharded<Vec<u8>, Vec<u8>, DATA_SHARD_BITS>;

/// The sessions by client id (in copy-on-write shards) and their eviction order: the table
/// the [`Sessions`](crate::session::Sessions) wrapper uses too.
type Sessions = SessionTable<KvResponse>;

/// The replicated key-value store.
///
/// **Snapshots by copy-on-write shards.** The keys live in 4096 shards (chosen by FNV-1a of the
/// key, the same in every process) and the client sessions in 1024 (by client id), each shard
/// a `BTreeMap` behind an `Arc`. [`StateMachine::snapshot`] runs on the server's loop thread,
/// so it only clones the shard `Arc`s into the job: O(shards), independent of the number of
/// keys. A write afterwards `Arc::make_mut`s its shard, so the first write to a shard while a
/// snapshot still holds it copies that shard alone (1/4096 of the keys); a write copies at most
/// one data shard and two session shards (its own and, when the bound is reached, the evicted
/// session's). The job, on another thread, sorts the frozen shards' entries and encodes them
/// in the unchanged canonical format (see `snapshot.rs`), byte for byte what one sorted map
/// gives. The shard count trades the loop's cost at snapshot time (4096 + 1024 `Arc` clones)
/// against the cost of the first write to a shard (its share of the keys).
///
/// Measured (release build, 1 M distinct random 16-byte keys with 100-byte values, 100,000
/// sessions, on a loaded 2-core VM, so ranges over repeats; issue 11):
/// - `snapshot()`: 18-60 µs (before: the whole encode on the loop, 0.23-0.8 s);
/// - the job, off the loop: 0.5-1.2 s (sort, then encode; the bytes are identical);
/// - writes while a job holds the shards: median 3 µs; a shard's first write copies its ~244
///   keys, p99 80-200 µs. The worst single writes seen were 2-12 ms, and later `snapshot()`
///   calls 3-12 ms: once a finished job has freed the shards it held (up to ~2 M blocks),
///   glibc's malloc took 2-3.5 ms for any allocation of 1 KB or more (a bare 32 KB `Vec` was
///   measured alone), a cost of the allocator under this free pattern, not of the copying;
/// - memory: 192.6 B per key against 190.2 before (+1%), sessions +39 B each; transiently,
///   every shard written while a job runs is held twice (10,000 writes spread over the keys
///   touched nearly all shards: +174 MB until the job ended).
///
/// Equality compares everything a snapshot holds: every key and every client session. A key
/// is in the same shard in every store, so comparing shard by shard compares contents,
/// whatever order the keys were written in.
#[derive(Debug, PartialEq, Eq)]
pub struct KvStore {
    data: Data,
    /// client id -> its session, bounded by [`SESSIONS_MAX`]
    sessions: Sessions,
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore { data: Data::default(), sessions: Sessions::new(SESSIONS_MAX) }
    }
}

impl KvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current value of `key` (local read: not linearizable on its own).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.data.get(key).map(Vec::as_slice)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.data.len() == 0
    }

    /// Forget every client session (only for [`without_sessions`]).
    fn forget_sessions(&mut self) {
        let data = std::mem::take(&mut self.data);
        *self = KvStore { data, ..KvStore::default() };
    }

    /// Apply one decoded command (see [`StateMachine::apply`]).
    pub fn apply_command(&mut self, index: LogIndex, command: KvCommand) -> KvResponse {
        match self.sessions.check(command.client_id, command.seq) {
            Verdict::Duplicate(response) => return response.clone(), // a retry: same answer, no effect
            Verdict::Stale { last } => return KvResponse::StaleSequence { last },
            Verdict::Apply => {}
        }
        let response = self.execute(command.op);
        if command.client_id != 0 {
            self.sessions.remember(index, command.client_id, command.seq, response.clone());
        }
        response
    }

    fn execute(&mut self, op: KvOp) -> KvResponse {
        match op {
            KvOp::Put { key, value } => {
                self.data.insert(key, value);
                KvResponse::Done
            }
            KvOp::Get { key } => KvResponse::Value(self.data.get(key.as_slice()).cloned()),
            KvOp::Delete { key } => KvResponse::Deleted { existed: self.data.remove(key.as_slice()).is_some() },
            KvOp::Cas { key, expected, new } => {
                let swapped = self.data.get(key.as_slice()) == expected.as_ref();
                // Only a swap writes (a failed CAS must not copy a shard a snapshot shares).
                let current = if !swapped {
                    self.data.get(key.as_slice()).cloned()
                } else {
                    match new {
                        Some(value) => {
                            self.data.insert(key, value.clone());
                            Some(value)
                        }
                        None => {
                            self.data.remove(key.as_slice());
                            None
                        }
                    }
                };
                KvResponse::Cas { swapped, current }
            }
        }
    }
}

impl StateMachine for KvStore {
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Vec<u8> {
        let response = match decode::<KvCommand>(command, KV_COMMAND_BYTES_MAX) {
            Ok(command) => self.apply_command(index, command),
            Err(_) => KvResponse::BadCommand,
        };
        encode(&response)
    }

    fn snapshot(&self) -> SnapshotJob {
        // Shallow clones (one `Arc` per shard): the loop's whole cost. Writes from now on copy
        // the shards they touch, so these stay as they are now.
        let (data, sessions): (Data, SessionMap<KvResponse>) = (self.data.clone(), self.sessions.frozen());
        Box::new(move || snapshot::encode(&data, &sessions))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        // Decoded and validated completely before anything is replaced: on error the store
        // is unchanged.
        *self = snapshot::decode(snapshot)?;
        Ok(())
    }

    /// A query is an encoded [`KvCommand`] whose op is `Get` (its session fields are not
    /// used), answered with an encoded [`KvResponse::Value`].
    fn query(&self, query: &[u8]) -> Result<Vec<u8>, String> {
        match decode::<KvCommand>(query, KV_COMMAND_BYTES_MAX) {
            Ok(KvCommand { op: KvOp::Get { key }, .. }) => {
                Ok(encode(&KvResponse::Value(self.get(&key).map(<[u8]>::to_vec))))
            }
            Ok(_) => Err("a read's query must be a Get: writes go through the log (Propose)".into()),
            Err(e) => Err(format!("the query is not a KvCommand: {e:?}")),
        }
    }
}

pub(crate) mod sharded;
mod snapshot;

pub use snapshot::KV_SNAPSHOT_VERSION;

/// A KV snapshot with its client sessions removed: the simulator's planted bug
/// `snapshot_without_sessions` (a retried write is then applied twice after a restore).
/// `None` when `bytes` is not a KV snapshot.
#[doc(hidden)]
pub fn without_sessions(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut kv = KvStore::new();
    kv.restore(bytes).ok()?;
    kv.forget_sessions();
    Some(kv.snapshot()())
}

#[cfg(test)]
mod tests;
