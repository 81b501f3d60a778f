//! The key-value store's snapshot format (Raft §7): every key and every client session.
//!
//! ```text
//! byte 0     format version (KV_SNAPSHOT_VERSION = 1)
//! bytes 1..  crate::codec (bincode: fixint, little endian, no trailing bytes) of
//!            { data: [(key, value)] in ascending key order,
//!              sessions: [(client_id, seq, index, response)] in ascending client id order }
//! ```
//!
//! The body uses the codec the commands in the log already use: a snapshot stands in for a
//! prefix of that log, so both change together or not at all, and the leading version byte
//! lets a later layout be told apart instead of misread.
//!
//! Sessions are part of the snapshot because duplicate detection (thesis §6.3) must survive
//! compaction: without them, a client retrying a write whose entry was compacted away would
//! have it applied twice. The index of each session's last use is kept too, so the
//! least-recently-used eviction continues exactly as on a server that never compacted (every
//! server must forget the same sessions, or their answers would diverge).
//!
//! Both lists are sorted, so the same state always gives the same bytes, and restore accepts
//! only that canonical form: a snapshot that restores re-encodes to exactly its own bytes.

use super::{Data, KvResponse, KvStore, Sessions, SESSIONS_MAX};
use crate::codec::{self, DecodeError};
use crate::session::table::SessionMap;
use serde::{Deserialize, Serialize};

/// The first byte of every KV snapshot. Bumped whenever the layout changes; restore refuses
/// any other value rather than guess.
pub const KV_SNAPSHOT_VERSION: u8 = 1;

/// What [`encode`] writes, borrowing from the store (a snapshot of a large store should not
/// need a second copy of every key just to be encoded).
#[derive(Serialize)]
struct BodyRef<'a> {
    data: Vec<PairRef<'a>>,
    sessions: Vec<SessionRef<'a>>,
}

#[derive(Serialize)]
struct PairRef<'a> {
    #[serde(with = "serde_bytes")]
    key: &'a [u8],
    #[serde(with = "serde_bytes")]
    value: &'a [u8],
}

#[derive(Serialize)]
struct SessionRef<'a> {
    client_id: u64,
    seq: u64,
    index: u64,
    response: &'a KvResponse,
}

/// What [`decode`] reads: the same layout as [`BodyRef`], owned.
#[derive(Deserialize)]
struct Body {
    data: Vec<Pair>,
    sessions: Vec<Session>,
}

#[derive(Deserialize)]
struct Pair {
    #[serde(with = "serde_bytes")]
    key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
}

#[derive(Deserialize)]
struct Session {
    client_id: u64,
    seq: u64,
    index: u64,
    response: KvResponse,
}

/// A frozen store (its shards, see [`KvStore`]) as snapshot bytes, in the canonical order
/// described in the module header. Runs in the snapshot job, off the loop thread.
pub(super) fn encode(data: &Data, sessions: &SessionMap<KvResponse>) -> Vec<u8> {
    // Sharding is by hash, so the shards must be merged into key order here: the bytes
    // depend on the contents only, never on how they are spread over shards.
    let data = data.sorted().into_iter().map(|(key, value)| PairRef { key, value }).collect();
    let sessions = sessions
        .sorted()
        .into_iter()
        .map(|(&client_id, session)| SessionRef {
            client_id,
            seq: session.seq,
            index: session.index.0,
            response: &session.response,
        })
        .collect();
    let mut bytes = vec![KV_SNAPSHOT_VERSION];
    bytes.extend_from_slice(&codec::encode(&BodyRef { data, sessions }));
    bytes
}

/// Decodes and validates a snapshot completely, building a new store; the caller replaces
/// its state only on success.
pub(super) fn decode(bytes: &[u8]) -> Result<KvStore, String> {
    let (&version, body) = bytes.split_first().ok_or("empty KV snapshot: no format version byte")?;
    if version != KV_SNAPSHOT_VERSION {
        return Err(format!("unknown KV snapshot format version {version}, expected {KV_SNAPSHOT_VERSION}"));
    }
    // The limit is the input itself: no length prefix inside can make the decoder allocate
    // more than the bytes it was given.
    let body: Body = codec::decode(body, body.len()).map_err(|err| match err {
        DecodeError::Truncated => "KV snapshot is truncated".to_string(),
        DecodeError::Oversize => "KV snapshot has a length larger than the snapshot itself".to_string(),
        DecodeError::Garbage => "KV snapshot body does not decode (bad tag, bad length or trailing bytes)".to_string(),
    })?;

    let mut previous: Option<&[u8]> = None;
    for (i, pair) in body.data.iter().enumerate() {
        if previous.is_some_and(|previous| previous >= pair.key.as_slice()) {
            return Err(format!("KV snapshot key {i} is not after the key before it (keys must be sorted, unique)"));
        }
        previous = Some(&pair.key);
    }
    let data = Data::from_sorted(body.data.into_iter().map(|pair| (pair.key, pair.value)));

    // Only an executed operation is remembered (see `KvStore::apply_command`): a stale or
    // undecodable command's answer in a session was not written by `encode`.
    let sessions = Sessions::from_snapshot(
        "KV snapshot",
        SESSIONS_MAX,
        body.sessions.into_iter().map(|s| (s.client_id, s.seq, s.index, s.response)),
        |response| matches!(response, KvResponse::StaleSequence { .. } | KvResponse::BadCommand),
    )?;
    Ok(KvStore { data, sessions })
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
