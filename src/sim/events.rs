//! The simulator's event queue, trace and fault vocabulary.

use crate::core::{Message, NodeId};
use std::collections::BTreeMap;

/// Virtual time in milliseconds.
pub type Time = u64;

/// Something that happens at a virtual instant.
#[derive(Clone, Debug)]
pub enum Event {
    /// A server's clock ticks (skipped while it is paused).
    Tick(NodeId),
    /// A message arrives.
    Deliver { from: NodeId, to: NodeId, message: Message },
    /// A server's fsync completes (for the incarnation that started it).
    PersistDone { node: NodeId, incarnation: u64 },
    /// A client's request reaches a server.
    ClientRequest { client: usize, to: NodeId, attempt: u64 },
    /// A server's answer reaches a client.
    ClientReply { client: usize, attempt: u64, outcome: ClientOutcome },
    /// A client gives up on the current attempt (and retries or abandons).
    ClientTimeout { client: usize, attempt: u64 },
    /// A client starts its next operation.
    ClientNext { client: usize },
    /// The fault injector acts.
    Fault,
    /// Crash this incarnation of a server (a targeted fault: new leaders die young).
    Crash { node: NodeId, incarnation: u64 },
    /// Restart a crashed server.
    Restart(NodeId),
    /// A paused server resumes (if still in that pause: a crash ends a pause).
    Resume { node: NodeId, pause: u64 },
    /// Every link works again (the stability nemesis ends a cut).
    Heal,
    /// The membership nemesis acts (`periodic`: and schedules its next turn).
    Membership { periodic: bool },
    /// Cut a server off both ways (right after it took a membership change).
    Isolate(NodeId),
    /// A server's snapshot thread finished writing a snapshot (for that incarnation).
    SnapshotTaken { node: NodeId, incarnation: u64, meta: crate::storage::SnapshotMeta, len: u64 },
}

/// What a server answered a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOutcome {
    /// Applied at this index with this encoded `KvResponse`.
    Applied(Vec<u8>),
    /// Not the leader; maybe a hint.
    NotLeader(Option<NodeId>),
    /// Proposed but lost to a leader change.
    Dropped,
}

/// Events ordered by (time, sequence): ties break by insertion order, so a run is a pure
/// function of its seed.
#[derive(Default)]
pub struct Queue {
    events: BTreeMap<(Time, u64), Event>,
    next_seq: u64,
}

impl Queue {
    /// Schedule `event` at `at`.
    pub fn push(&mut self, at: Time, event: Event) {
        self.events.insert((at, self.next_seq), event);
        self.next_seq += 1;
    }

    /// The earliest event.
    pub fn pop(&mut self) -> Option<(Time, Event)> {
        self.events.pop_first().map(|((t, _), e)| (t, e))
    }
}

/// FNV-1a over the numbers that describe each event: two runs of one seed must produce the
/// same hash (the determinism test), and the last events are kept as text for a failure.
pub struct Trace {
    hash: u64,
    tail: Vec<String>,
    tail_max: usize,
    /// Whether to keep text at all (formatting every event costs more than the event).
    pub keep_text: bool,
}

impl Trace {
    /// An empty trace keeping the last `tail_max` events as text when `keep_text`.
    pub fn new(tail_max: usize, keep_text: bool) -> Self {
        Trace { hash: 0xcbf2_9ce4_8422_2325, tail: Vec::new(), tail_max, keep_text }
    }

    /// Mix numbers into the hash.
    pub fn mix(&mut self, values: &[u64]) {
        for v in values {
            for b in v.to_le_bytes() {
                self.hash ^= u64::from(b);
                self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }

    /// Record a readable line (only when text is kept).
    pub fn line(&mut self, text: impl FnOnce() -> String) {
        if self.keep_text {
            if self.tail.len() == self.tail_max {
                self.tail.remove(0);
            }
            self.tail.push(text());
        }
    }

    /// The hash so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The last lines kept.
    pub fn tail(&self) -> &[String] {
        &self.tail
    }
}
