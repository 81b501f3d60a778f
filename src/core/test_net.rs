//! A lossless in-order network of cores for unit tests (replication, membership): every
//! Ready is persisted at once, its messages queued, its committed entries applied in order.

use super::*;
use std::collections::{BTreeMap, VecDeque};

/// A lossless in-order network of cores whose storage persists every Ready at once.
pub(super) struct Net {
    pub(super) nodes: BTreeMap<NodeId, Raft>,
    pub(super) queue: VecDeque<(NodeId, Outgoing)>,
    pub(super) applied: BTreeMap<NodeId, Vec<Entry>>,
    /// Messages delivered so far.
    pub(super) delivered: usize,
    /// Servers whose messages are dropped (both directions).
    pub(super) down: Vec<NodeId>,
}

impl Net {
    pub(super) fn new(nodes: Vec<Raft>) -> Net {
        let nodes: BTreeMap<NodeId, Raft> = nodes.into_iter().map(|r| (r.id(), r)).collect();
        Net {
            applied: nodes.keys().map(|id| (*id, vec![])).collect(),
            nodes,
            queue: VecDeque::new(),
            delivered: 0,
            down: vec![],
        }
    }

    /// Handle every node's Ready (persist = accept, then send, then apply, then advance).
    pub(super) fn flush(&mut self) {
        for (id, node) in self.nodes.iter_mut() {
            while node.has_ready() {
                let ready = node.ready();
                for out in ready.messages {
                    self.queue.push_back((*id, out));
                }
                let applied = self.applied.get_mut(id).unwrap();
                for e in node.entries(ready.committed_entries).to_vec() {
                    assert_eq!(e.index.0, applied.len() as u64 + 1, "{id} applies in order without gaps");
                    applied.push(e);
                }
                node.advance();
            }
        }
    }

    /// Deliver messages until the network is quiet; returns how many were delivered.
    pub(super) fn run(&mut self) -> usize {
        let start = self.delivered;
        self.flush();
        while let Some((from, out)) = self.queue.pop_front() {
            if self.down.contains(&from) || self.down.contains(&out.to) {
                continue;
            }
            self.delivered += 1;
            assert!(self.delivered - start < 100_000, "network never quiets down");
            self.nodes.get_mut(&out.to).unwrap().step(from, out.message);
            self.flush();
        }
        self.delivered - start
    }

    pub(super) fn node(&mut self, id: u64) -> &mut Raft {
        self.nodes.get_mut(&NodeId(id)).unwrap()
    }
}
