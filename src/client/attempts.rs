//! What the attempts of one operation learned, and the error it ends with (docs/cli.md).
//!
//! Kept apart from the sockets so each rule is a unit test: which servers ever took a
//! connection, which answered authentically, which answered frames with a bad MAC, and whether
//! a write may have been appended somewhere.

use super::CallError;
use crate::core::NodeId;
use crate::transport::client_wire::ClientError;
use std::collections::{BTreeMap, BTreeSet};

/// How one attempt went, as the retry loop saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    /// No connection to the server: nothing was sent.
    NotConnected,
    /// Sent, no answer before the per-request deadline.
    Silent,
    /// It answered with a frame whose MAC does not verify under this client's key.
    BadMac,
    /// It answered (authentically) with this error.
    Refused(ClientError),
    /// It answered, but the answer did not decode (or matched nothing).
    Garbled(String),
}

/// The record of one operation's attempts.
#[derive(Debug)]
pub(super) struct Attempts {
    /// Servers the operation may use.
    targets: BTreeSet<NodeId>,
    /// A write (a silent server may have appended it).
    write: bool,
    tried: BTreeSet<NodeId>,
    connected: BTreeSet<NodeId>,
    bad_mac: BTreeSet<NodeId>,
    /// The last authentic refusal of each server that gave one.
    said: BTreeMap<NodeId, String>,
    /// A write went to a server that went silent, or was dropped by a leader change.
    maybe_applied: bool,
    /// A read went to a server that went silent.
    read_lost: bool,
}

impl Attempts {
    pub(super) fn new(targets: impl IntoIterator<Item = NodeId>, write: bool) -> Attempts {
        Attempts {
            targets: targets.into_iter().collect(),
            write,
            tried: BTreeSet::new(),
            connected: BTreeSet::new(),
            bad_mac: BTreeSet::new(),
            said: BTreeMap::new(),
            maybe_applied: false,
            read_lost: false,
        }
    }

    /// Servers connected before the first attempt (the connect wait).
    pub(super) fn connected(&mut self, pids: impl IntoIterator<Item = NodeId>) {
        self.connected.extend(pids);
    }

    /// Record an attempt on `pid`.
    pub(super) fn record(&mut self, pid: NodeId, seen: Seen) {
        self.tried.insert(pid);
        if seen != Seen::NotConnected {
            self.connected.insert(pid);
        }
        match seen {
            Seen::NotConnected => {}
            Seen::Silent if self.write => self.maybe_applied = true,
            Seen::Silent => self.read_lost = true,
            Seen::BadMac => {
                self.bad_mac.insert(pid);
            }
            Seen::Refused(e) => {
                if e == ClientError::Dropped && self.write {
                    self.maybe_applied = true;
                }
                self.said.insert(pid, CallError::Refused(e).to_string());
            }
            Seen::Garbled(why) => {
                self.said.insert(pid, format!("bad response: {why}"));
            }
        }
    }

    /// The error to stop with now, before the deadline, when waiting longer cannot help:
    /// every server was tried, and nothing but frames with a bad MAC came back (a key that
    /// differs does not start to match).
    pub(super) fn conclusive(&self) -> Option<CallError> {
        let all_tried = self.targets.is_subset(&self.tried);
        (all_tried && !self.bad_mac.is_empty() && self.said.is_empty() && !self.maybe_applied)
            .then_some(CallError::BadKey { servers: self.bad_mac.len() })
    }

    /// Whether `pid` answered with a bad MAC (not worth asking again).
    pub(super) fn bad_mac(&self, pid: NodeId) -> bool {
        self.bad_mac.contains(&pid)
    }

    /// The error at the deadline.
    pub(super) fn verdict(&self) -> CallError {
        let answered = !self.said.is_empty();
        if self.maybe_applied {
            return if answered { CallError::Timeout } else { CallError::NoAnswer { write: true } };
        }
        if answered {
            let said = self.said.iter().map(|(pid, s)| (*pid, s.clone())).collect();
            return CallError::NoLeader { servers: self.targets.len(), said };
        }
        if !self.bad_mac.is_empty() {
            return CallError::BadKey { servers: self.bad_mac.len() };
        }
        if self.read_lost {
            return CallError::NoAnswer { write: false };
        }
        if self.connected.is_empty() {
            return CallError::NothingReachable { servers: self.targets.len() };
        }
        // Connections came up but nothing was ever sent over them in time: nothing changed.
        if self.write {
            CallError::NoAnswer { write: false }
        } else {
            CallError::ReadTimeout
        }
    }

    /// The error when no server took a connection within the connect wait.
    pub(super) fn nothing_reachable(&self) -> CallError {
        CallError::NothingReachable { servers: self.targets.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pids(n: u64) -> Vec<NodeId> {
        (1..=n).map(NodeId).collect()
    }

    #[test]
    fn nothing_connected_is_nothing_reachable_and_never_maybe_applied() {
        let mut a = Attempts::new(pids(3), true);
        for p in pids(3) {
            a.record(p, Seen::NotConnected);
        }
        assert_eq!(a.conclusive(), None);
        let e = a.verdict();
        assert_eq!(e, CallError::NothingReachable { servers: 3 });
        assert!(!e.maybe_applied());
        assert!(e.to_string().starts_with("nothing reachable: none of the 3 servers"), "{e}");
    }

    #[test]
    fn servers_that_answer_without_a_leader_are_named_and_nothing_may_apply() {
        let mut a = Attempts::new(pids(3), true);
        a.record(NodeId(1), Seen::NotConnected);
        a.record(NodeId(2), Seen::Refused(ClientError::NotLeader { leader: None }));
        a.record(NodeId(3), Seen::NotConnected);
        let e = a.verdict();
        assert!(!e.maybe_applied());
        assert_eq!(
            e.to_string(),
            "no leader: 1 of 3 servers answers, none leads: no quorum? (server 2: not the leader (none known)); \
             nothing was changed"
        );
        let mut all = Attempts::new(pids(3), false);
        for p in pids(3) {
            all.record(p, Seen::Refused(ClientError::NotLeader { leader: None }));
        }
        assert!(all.verdict().to_string().starts_with("no leader: 3 of 3 servers answer, none leads"));
    }

    #[test]
    fn only_a_write_sent_to_a_silent_server_or_dropped_may_still_apply() {
        // A silent server after an answer from another: the write may have been appended.
        let mut a = Attempts::new(pids(3), true);
        a.record(NodeId(1), Seen::Refused(ClientError::NotLeader { leader: Some(NodeId(2)) }));
        a.record(NodeId(2), Seen::Silent);
        assert_eq!(a.verdict(), CallError::Timeout);
        assert!(a.verdict().to_string().contains("may still apply"));
        // Dropped by a leader change: outcome unknown.
        let mut d = Attempts::new(pids(3), true);
        d.record(NodeId(1), Seen::Refused(ClientError::Dropped));
        assert!(d.verdict().maybe_applied());
        // Silent, nobody else answered.
        let mut s = Attempts::new(pids(1), true);
        s.record(NodeId(1), Seen::Silent);
        assert_eq!(s.verdict(), CallError::NoAnswer { write: true });
        // The same for a read never says it may apply.
        let mut r = Attempts::new(pids(3), false);
        r.record(NodeId(1), Seen::Refused(ClientError::NotLeader { leader: Some(NodeId(2)) }));
        r.record(NodeId(2), Seen::Silent);
        r.record(NodeId(3), Seen::Refused(ClientError::Dropped));
        for e in [r.verdict(), CallError::NoAnswer { write: false }, CallError::ReadTimeout] {
            assert!(!e.maybe_applied() && !e.to_string().contains("may still apply"), "{e}");
        }
    }

    #[test]
    fn bad_macs_from_every_server_conclude_at_once_unless_something_authentic_answered() {
        let mut a = Attempts::new(pids(3), false);
        a.record(NodeId(1), Seen::BadMac);
        a.record(NodeId(2), Seen::BadMac);
        assert_eq!(a.conclusive(), None, "server 3 not tried yet");
        a.record(NodeId(3), Seen::NotConnected);
        assert_eq!(a.conclusive(), Some(CallError::BadKey { servers: 2 }));
        assert_eq!(
            a.verdict().to_string(),
            "no server answered; 2 servers answered frames with a bad MAC: this client's cluster key differs \
             from the servers' (cluster_key_file / --cluster-key)"
        );
        let mut mixed = Attempts::new(pids(2), false);
        mixed.record(NodeId(1), Seen::BadMac);
        mixed.record(NodeId(2), Seen::Refused(ClientError::NotLeader { leader: None }));
        assert_eq!(mixed.conclusive(), None, "an authentic answer: keep trying");
    }

    #[test]
    fn too_large_names_the_size_and_the_limit() {
        let e = CallError::TooLarge { what: "key and value", bytes: 1_572_865, limit: crate::kv::KV_DATA_BYTES_MAX };
        assert_eq!(e.to_string(), "value too large: key and value are 1572865 bytes (limit 1572864, 1.5 MiB)");
        let e = CallError::TooLarge { what: "command", bytes: 2 << 20, limit: crate::core::COMMAND_BYTES_MAX };
        assert_eq!(e.to_string(), "command too large: 2097152 bytes (limit 1573888, 1537 KiB)");
    }
}
