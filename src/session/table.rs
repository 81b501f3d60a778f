//! The client-session table of duplicate detection (thesis §6.3), shared by the built-in store
//! ([`KvStore`](crate::kv::KvStore)) and the [`Sessions`](super::Sessions) wrapper, so that each
//! decision is made in one place: whether a (client, seq) is new, a retry or stale; which
//! session is forgotten at the bound; and what a snapshot's session list must look like.
//!
//! Sessions live in copy-on-write shards (see [`KvStore`](crate::kv::KvStore) for why and for
//! the measured cost): freezing the table for a snapshot is one `Arc` clone per shard.

use crate::core::LogIndex;
use crate::kv::sharded::Sharded;
use std::collections::BTreeMap;

/// Session shards: 2^10 = 1024. At [`SESSIONS_MAX`](crate::kv::SESSIONS_MAX) sessions a shard
/// holds about 98.
const SESSION_SHARD_BITS: u32 = 10;

/// A client's session: its last sequence number, that command's response, and the index it was
/// applied at (its last use, which orders eviction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session<R> {
    /// The last sequence number applied for the client.
    pub(crate) seq: u64,
    /// What that command returned: the answer to a retry of it.
    pub(crate) response: R,
    /// The log index it was applied at.
    pub(crate) index: LogIndex,
}

/// The sessions by client id, in copy-on-write shards: what a snapshot job holds.
pub(crate) type SessionMap<R> = Sharded<u64, Session<R>, SESSION_SHARD_BITS>;

/// What to do with a command of client `client` with sequence number `seq`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict<'a, R> {
    /// New (or client 0, "no session"): apply it, then [`SessionTable::remember`] it.
    Apply,
    /// A retry of the client's last command: answer with its response, do not apply.
    Duplicate(&'a R),
    /// Older than the client's last command (a very late retry): refuse, do not apply.
    Stale {
        /// The last sequence number applied for this client.
        last: u64,
    },
}

/// The sessions, bounded: beyond `max` the least recently used is forgotten. Eviction depends
/// only on the log (last use is a log index), so every server forgets the same sessions.
///
/// What a forgotten client sees: nothing at once. Its next new command is applied as usual (a
/// session is created again); only a retry of a command applied before it was forgotten is
/// applied a second time, because nothing remembers it. A client is forgotten only after `max`
/// other clients have written since its last write.
///
/// Equality compares the sessions and their order (the order follows from the sessions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionTable<R: Clone> {
    sessions: SessionMap<R>,
    /// Index of a session's last use -> client id, to forget the least recently used. Not in
    /// the snapshot (each session carries its index), so not shared: changed in place.
    order: BTreeMap<LogIndex, u64>,
    /// The bound; the same on every server, or their answers would diverge.
    max: usize,
}

impl<R: Clone> SessionTable<R> {
    /// An empty table of at most `max` sessions (at least one).
    pub(crate) fn new(max: usize) -> Self {
        SessionTable { sessions: SessionMap::new(), order: BTreeMap::new(), max: max.max(1) }
    }

    /// Sessions remembered.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// The bound.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The session of `client`.
    pub(crate) fn get(&self, client: &u64) -> Option<&Session<R>> {
        self.sessions.get(client)
    }

    /// The one duplicate-detection decision: new, retry or stale. Client 0 is "no session":
    /// always applied, never remembered.
    pub(crate) fn check(&self, client: u64, seq: u64) -> Verdict<'_, R> {
        if client == 0 {
            return Verdict::Apply;
        }
        match self.sessions.get(&client) {
            Some(session) if seq == session.seq => Verdict::Duplicate(&session.response),
            Some(session) if seq < session.seq => Verdict::Stale { last: session.seq },
            _ => Verdict::Apply,
        }
    }

    /// Record that `client`'s command `seq`, applied at `index`, returned `response`; forget
    /// the least recently used session beyond the bound. Client 0 is not remembered.
    pub(crate) fn remember(&mut self, index: LogIndex, client: u64, seq: u64, response: R) {
        if client == 0 {
            return;
        }
        if let Some(old) = self.sessions.insert(client, Session { seq, response, index }) {
            self.order.remove(&old.index);
        }
        self.order.insert(index, client);
        while self.sessions.len() > self.max {
            let (_, oldest) = self.order.pop_first().expect("order tracks every session");
            self.sessions.remove(&oldest);
        }
    }

    /// The sessions as they are now, for a snapshot job (shallow: one `Arc` per shard; later
    /// writes copy the shards they touch).
    pub(crate) fn frozen(&self) -> SessionMap<R> {
        self.sessions.clone()
    }

    /// Rebuild a table of at most `max` sessions from a snapshot's list of
    /// `(client, seq, index, response)`, validating it completely: `what` names the snapshot in
    /// errors, and `never_stored` says which responses [`SessionTable::remember`] is never
    /// given by its user. The list must be what encoding [`SessionTable::frozen`] in ascending
    /// client order gives: ids sorted, unique and non-zero, indexes non-zero and distinct (one
    /// index applies one command), at most `max` of them.
    pub(crate) fn from_snapshot(
        what: &str,
        max: usize,
        entries: impl ExactSizeIterator<Item = (u64, u64, u64, R)>,
        never_stored: impl Fn(&R) -> bool,
    ) -> Result<Self, String> {
        let mut table = SessionTable::new(max);
        if entries.len() > table.max {
            return Err(format!("{what} has {} sessions, more than {}", entries.len(), table.max));
        }
        let mut sorted = Vec::with_capacity(entries.len());
        let mut previous_client = 0;
        for (client, seq, index, response) in entries {
            if client <= previous_client {
                return Err(format!(
                    "{what} session of client {client} is out of order or client 0 (ids must be sorted, unique, non-zero)"
                ));
            }
            previous_client = client;
            if index == 0 {
                return Err(format!("{what} session of client {client} was last used at index 0"));
            }
            if never_stored(&response) {
                return Err(format!("{what} session of client {client} remembers a response that is never stored"));
            }
            if let Some(other) = table.order.insert(LogIndex(index), client) {
                return Err(format!(
                    "{what} sessions of clients {other} and {client} were both last used at index {index}"
                ));
            }
            sorted.push((client, Session { seq, response, index: LogIndex(index) }));
        }
        table.sessions = SessionMap::from_sorted(sorted);
        Ok(table)
    }

    /// The shards, for tests that check what a write copied.
    #[cfg(test)]
    pub(crate) fn shards(&self) -> &[std::sync::Arc<BTreeMap<u64, Session<R>>>] {
        self.sessions.shards()
    }

    /// Every session, in no particular order, for tests.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u64, &Session<R>)> {
        self.sessions.iter()
    }

    /// The eviction order, for tests.
    #[cfg(test)]
    pub(crate) fn order(&self) -> &BTreeMap<LogIndex, u64> {
        &self.order
    }
}
