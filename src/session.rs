//! Exactly-once commands for your own [`StateMachine`]: client sessions (thesis §6.3) as a
//! wrapper, the same duplicate detection the built-in key-value store has.
//!
//! A client that got no answer sends its command again (the [`Client`](crate::client::Client)
//! does so by itself across timeouts and leader changes), so a command can be committed twice.
//! [`Sessions`] wraps a state machine and applies each command once: every command carries a
//! header with a client id and a sequence number, and the wrapper remembers, per client, the
//! last sequence number applied and its response.
//! - a new sequence number (greater than the client's last) is applied by the inner machine;
//! - the client's last sequence number again (a retry) is answered with the recorded response,
//!   not applied again;
//! - an older one (a very late retry) is refused: [`SessionError::Stale`] on the client;
//! - client id 0 means "no session": applied every time, never remembered.
//!
//! The table is part of the snapshot (with the inner machine's own image), so a retry is
//! recognised after a restart or on a server restored from a snapshot too. It holds at most
//! [`SESSIONS_MAX`] sessions by default ([`Sessions::with_max_sessions`] to change it, to the
//! same value on every server); beyond that the least recently used client is forgotten. **What
//! a forgotten client sees**: nothing at once; its next new command is applied as usual and
//! starts a new session, but a retry of a command applied before it was forgotten is applied a
//! second time. A client is forgotten only after that many other clients wrote since its last
//! write, as in the built-in store.
//!
//! On the client side, [`SessionClient`] adds the header: a random client id, a sequence
//! number that grows by one per new command, and the same one on every retry (including
//! [`SessionClient::retry_last`] after a timeout, when the outcome is unknown). Queries (reads
//! without the log) carry no header and go to the inner machine as they are.
//!
//! # Example
//!
//! ```
//! use leader::core::LogIndex;
//! use leader::kv::{SnapshotJob, StateMachine};
//! use leader::session::{self, SessionResponse, Sessions};
//!
//! /// "add N" (8 bytes, little endian), answering the new total.
//! #[derive(Default)]
//! struct Counter { total: u64 }
//!
//! impl StateMachine for Counter {
//!     fn apply(&mut self, _index: LogIndex, command: &[u8]) -> Vec<u8> {
//!         if let Ok(n) = <[u8; 8]>::try_from(command) {
//!             self.total = self.total.wrapping_add(u64::from_le_bytes(n));
//!         }
//!         self.total.to_le_bytes().to_vec()
//!     }
//!     fn snapshot(&self) -> SnapshotJob {
//!         let total = self.total;
//!         Box::new(move || total.to_le_bytes().to_vec())
//!     }
//!     fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
//!         let n = <[u8; 8]>::try_from(bytes).map_err(|_| "expected 8 bytes".to_string())?;
//!         self.total = u64::from_le_bytes(n);
//!         Ok(())
//!     }
//! }
//!
//! // On every server: `Server::start_with_state_machine(.., Box::new(Sessions::new(Counter::default())))`.
//! let mut counter = Sessions::new(Counter::default());
//! let add_5 = session::encode_command(7, 1, &5u64.to_le_bytes()); // client 7, seq 1
//! let first = counter.apply(LogIndex(1), &add_5);
//! let retry = counter.apply(LogIndex(2), &add_5); // the same command committed twice
//! assert_eq!(first, retry); // the retry gets the first answer...
//! assert_eq!(counter.inner().total, 5); // ...and is not applied again
//! assert_eq!(SessionResponse::decode(&first), Ok(SessionResponse::Applied(5u64.to_le_bytes().to_vec())));
//!
//! // The table is in the snapshot: a restored server still recognises the retry.
//! let mut restored = Sessions::new(Counter::default());
//! restored.restore(&counter.snapshot()()).unwrap();
//! assert_eq!(restored.apply(LogIndex(3), &add_5), first);
//! assert_eq!(restored.inner().total, 5);
//!
//! // Clients: `SessionClient::new(Client::new(config)).propose(5u64.to_le_bytes().to_vec())`
//! // sends such commands, with the inner machine's answer as the result.
//! ```
//!
//! # Formats
//!
//! A command (what [`encode_command`] writes; the header is 17 bytes):
//! ```text
//! byte 0      SESSION_COMMAND_VERSION (1)
//! bytes 1..9  client id, u64 little endian (0: no session)
//! bytes 9..17 sequence number, u64 little endian
//! bytes 17..  the inner machine's command (not empty)
//! ```
//! A response: see [`SessionResponse`]. A snapshot: see [`SESSION_SNAPSHOT_VERSION`].

use crate::codec::{self, DecodeError};
use crate::core::LogIndex;
use crate::kv::{SnapshotJob, StateMachine, SESSIONS_MAX};
use serde::{Deserialize, Serialize};
use table::{SessionMap, SessionTable, Verdict};

mod client;
pub(crate) mod table;

pub use client::{SessionClient, SessionError};

/// The first byte of every session command; a later header layout gets another value.
pub const SESSION_COMMAND_VERSION: u8 = 1;

/// Bytes before the inner command: version, client id, sequence number.
pub const HEADER_BYTES: usize = 17;

/// The first byte of every [`Sessions`] snapshot. Restore refuses any other value.
///
/// ```text
/// byte 0          SESSION_SNAPSHOT_VERSION (1)
/// bytes 1..9      T: length of the table, u64 little endian
/// bytes 9..9+T    crate::codec (bincode: fixint, little endian, no trailing bytes) of
///                 [(client_id, seq, index, response bytes)] in ascending client id order
/// bytes 9+T..     the inner state machine's snapshot, as its `snapshot` produced it
/// ```
/// The list is sorted, so the same state gives the same bytes; each session keeps the index of
/// its last use, so eviction continues as on a server that never compacted.
pub const SESSION_SNAPSHOT_VERSION: u8 = 1;

/// `command` for the inner machine, behind a session header of client `client_id` and sequence
/// number `seq` (see the module's "Formats").
pub fn encode_command(client_id: u64, seq: u64, command: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + command.len());
    bytes.push(SESSION_COMMAND_VERSION);
    bytes.extend_from_slice(&client_id.to_le_bytes());
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(command);
    bytes
}

/// (client id, sequence number, inner command) of a session command. The bytes are client
/// input: anything else is an `Err` naming what is wrong.
pub fn decode_command(bytes: &[u8]) -> Result<(u64, u64, &[u8]), String> {
    let (&version, rest) = bytes.split_first().ok_or("empty command: no session header")?;
    if version != SESSION_COMMAND_VERSION {
        return Err(format!("session header version {version}, expected {SESSION_COMMAND_VERSION}"));
    }
    if rest.len() < HEADER_BYTES - 1 {
        return Err(format!("{} bytes: shorter than the {HEADER_BYTES}-byte session header", bytes.len()));
    }
    let (ids, command) = rest.split_at(HEADER_BYTES - 1);
    if command.is_empty() {
        return Err("no command after the session header".into());
    }
    let client_id = u64::from_le_bytes(ids[..8].try_into().expect("8 bytes"));
    let seq = u64::from_le_bytes(ids[8..].try_into().expect("8 bytes"));
    Ok((client_id, seq, command))
}

/// What [`Sessions::apply`](StateMachine::apply) answers, encoded by [`SessionResponse::encode`]:
/// byte 0 is the kind, the rest its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionResponse {
    /// Kind 0, then the inner machine's response: the command was applied, now or, for a
    /// retry, before (the recorded response).
    Applied(Vec<u8>),
    /// Kind 1, then the last sequence number applied for the client (u64 little endian): the
    /// command is older than that, a very late retry, and was not applied.
    Stale {
        /// The client's last applied sequence number.
        last: u64,
    },
    /// Kind 2, then why, in UTF-8: the command has no valid session header (or nothing after
    /// it) and was not applied.
    BadCommand(String),
}

impl SessionResponse {
    /// The bytes a client receives.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            SessionResponse::Applied(response) => [&[0u8][..], response].concat(),
            SessionResponse::Stale { last } => [&[1u8][..], &last.to_le_bytes()].concat(),
            SessionResponse::BadCommand(why) => [&[2u8][..], why.as_bytes()].concat(),
        }
    }

    /// Decode a response (from the network: anything else is an `Err`).
    pub fn decode(bytes: &[u8]) -> Result<SessionResponse, String> {
        match bytes.split_first() {
            Some((0, response)) => Ok(SessionResponse::Applied(response.to_vec())),
            Some((1, last)) => {
                let last = <[u8; 8]>::try_from(last).map_err(|_| format!("stale answer of {} bytes", bytes.len()))?;
                Ok(SessionResponse::Stale { last: u64::from_le_bytes(last) })
            }
            Some((2, why)) => Ok(SessionResponse::BadCommand(String::from_utf8_lossy(why).into_owned())),
            Some((kind, _)) => Err(format!("unknown session response kind {kind}")),
            None => Err("empty session response".into()),
        }
    }
}

/// A state machine with client sessions: applies each (client, seq) once (see the module).
///
/// Per client it keeps only the last command's sequence number and response, so a client has
/// one command outstanding at a time (as [`SessionClient`] does). Memory: each remembered
/// session holds a copy of its last response plus some tens of bytes of bookkeeping (not
/// measured here; the built-in store's sessions measured +39 B each over its old layout), up
/// to the bound; snapshots hold the responses too. Freezing the table for a snapshot clones 1024 shard `Arc`s
/// on the loop thread, whatever its size, as the built-in store does.
pub struct Sessions<S> {
    inner: S,
    /// The inner machine's responses by client.
    table: SessionTable<Vec<u8>>,
}

impl<S: StateMachine> Sessions<S> {
    /// `inner` with a table of at most [`SESSIONS_MAX`] sessions.
    pub fn new(inner: S) -> Self {
        Self::with_max_sessions(inner, SESSIONS_MAX)
    }

    /// `inner` with a table of at most `max` sessions (at least 1). Every server must use the
    /// same bound: eviction changes answers, so servers with different bounds would diverge,
    /// and restore refuses a snapshot with more sessions than the bound.
    pub fn with_max_sessions(inner: S, max: usize) -> Self {
        Sessions { inner, table: SessionTable::new(max) }
    }

    /// The wrapped state machine.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Client sessions remembered now.
    pub fn sessions(&self) -> usize {
        self.table.len()
    }

    /// The last sequence number applied for `client_id`, if it is remembered.
    pub fn last_seq(&self, client_id: u64) -> Option<u64> {
        self.table.get(&client_id).map(|session| session.seq)
    }
}

impl<S: StateMachine> StateMachine for Sessions<S> {
    /// Decodes the header, then applies the command once per (client, seq); answers an
    /// encoded [`SessionResponse`].
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Vec<u8> {
        let (client, seq, inner_command) = match decode_command(command) {
            Ok(decoded) => decoded,
            Err(why) => return SessionResponse::BadCommand(why).encode(),
        };
        let response = match self.table.check(client, seq) {
            Verdict::Duplicate(response) => response.clone(),
            Verdict::Stale { last } => return SessionResponse::Stale { last }.encode(),
            Verdict::Apply => {
                let response = self.inner.apply(index, inner_command);
                self.table.remember(index, client, seq, response.clone());
                response
            }
        };
        SessionResponse::Applied(response).encode()
    }

    fn snapshot(&self) -> SnapshotJob {
        // Both frozen now, on the loop thread, cheaply: the table by its shards, the inner
        // machine by its own job.
        let (table, inner) = (self.table.frozen(), self.inner.snapshot());
        Box::new(move || encode_snapshot(&table, &inner()))
    }

    /// Validates the table completely, then restores the inner machine; the table is replaced
    /// only if that succeeds too, so on `Err` nothing changed.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let (table, inner) = decode_snapshot(snapshot, self.table.max())?;
        self.inner.restore(inner).map_err(|why| format!("session snapshot: the inner state machine refused: {why}"))?;
        self.table = table;
        Ok(())
    }

    /// Queries carry no header: the inner machine answers them.
    fn query(&self, query: &[u8]) -> Result<Vec<u8>, String> {
        self.inner.query(query)
    }
}

#[derive(Serialize)]
struct SessionRef<'a> {
    client_id: u64,
    seq: u64,
    index: u64,
    #[serde(with = "serde_bytes")]
    response: &'a [u8],
}

#[derive(Deserialize)]
struct SessionOwned {
    client_id: u64,
    seq: u64,
    index: u64,
    #[serde(with = "serde_bytes")]
    response: Vec<u8>,
}

/// The snapshot of [`SESSION_SNAPSHOT_VERSION`]: runs in the job, off the loop thread.
fn encode_snapshot(table: &SessionMap<Vec<u8>>, inner: &[u8]) -> Vec<u8> {
    let sessions: Vec<SessionRef> = table
        .sorted()
        .into_iter()
        .map(|(&client_id, s)| SessionRef { client_id, seq: s.seq, index: s.index.0, response: &s.response })
        .collect();
    let table = codec::encode(&sessions);
    let mut bytes = Vec::with_capacity(9 + table.len() + inner.len());
    bytes.push(SESSION_SNAPSHOT_VERSION);
    bytes.extend_from_slice(&(table.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&table);
    bytes.extend_from_slice(inner);
    bytes
}

/// The table (validated, at most `max` sessions) and the inner image of a snapshot.
fn decode_snapshot(bytes: &[u8], max: usize) -> Result<(SessionTable<Vec<u8>>, &[u8]), String> {
    let (&version, rest) = bytes.split_first().ok_or("empty session snapshot: no format version byte")?;
    if version != SESSION_SNAPSHOT_VERSION {
        return Err(format!("unknown session snapshot format version {version}, expected {SESSION_SNAPSHOT_VERSION}"));
    }
    let (length, rest) = rest.split_at_checked(8).ok_or("session snapshot is truncated in its table length")?;
    let length = u64::from_le_bytes(length.try_into().expect("8 bytes"));
    let (table, inner) = usize::try_from(length)
        .ok()
        .and_then(|length| rest.split_at_checked(length))
        .ok_or_else(|| format!("session snapshot table of {length} bytes, but only {} follow", rest.len()))?;
    // The limit is the input itself: no length inside can make the decoder allocate more.
    let sessions: Vec<SessionOwned> = codec::decode(table, table.len()).map_err(|err| match err {
        DecodeError::Truncated => "session snapshot table is truncated".to_string(),
        DecodeError::Oversize => "session snapshot table has a length larger than the table itself".to_string(),
        DecodeError::Garbage => "session snapshot table does not decode (bad length or trailing bytes)".to_string(),
    })?;
    let entries = sessions.into_iter().map(|s| (s.client_id, s.seq, s.index, s.response));
    // Any response bytes may be remembered: the inner machine's answers are opaque here.
    let table = SessionTable::from_snapshot("session snapshot", max, entries, |_| false)?;
    Ok((table, inner))
}

#[cfg(test)]
mod tests;
