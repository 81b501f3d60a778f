//! The one retry policy of the client (docs/wire.md, "Client behaviour"): which server to
//! try next, when to pause, and when to give up with which error.

use super::attempts::{Attempts, Seen};
use super::{CallError, Client, ReadFrom, CONNECT_WAIT};
use crate::core::NodeId;
use crate::transport::client_wire::ClientError;
use std::time::{Duration, Instant};

impl Client {
    /// Send attempts to the servers `from` names until one succeeds or the operation deadline
    /// passes: follow `NotLeader` redirects, pause while an election is under way, move on
    /// from a server that does not answer. Fails fast when no server takes a connection within
    /// [`CONNECT_WAIT`], when a server says this client lacks the key, and when every server
    /// answered only frames with a bad MAC; else at the deadline with what the attempts saw
    /// ([`Attempts::verdict`]). The one retry policy of the client (docs/wire.md, "Client
    /// behaviour"); `write`: the attempts propose (a silent server may have appended).
    pub(super) fn retry<R>(
        &mut self,
        from: ReadFrom,
        write: bool,
        mut attempt: impl FnMut(&mut Client, NodeId) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let start = Instant::now();
        let deadline = start + self.operation_deadline;
        let pids = self.config.pids();
        let targets = match from {
            ReadFrom::Server(pid) => vec![pid],
            ReadFrom::Leader | ReadFrom::Followers => pids.clone(),
        };
        let mut seen = Attempts::new(targets.iter().copied(), write);
        let up = self.wait_connected(&targets, deadline.min(start + CONNECT_WAIT), true);
        if up.is_empty() {
            return Err(match self.config.server(targets[0]) {
                Err(e) => CallError::Local(e.to_string()),
                Ok(_) => seen.nothing_reachable(),
            });
        }
        seen.connected(up);
        self.in_retry = true;
        let result = self.retry_loop(from, deadline, &pids, &mut seen, &mut attempt);
        self.in_retry = false;
        result
    }

    fn retry_loop<R>(
        &mut self,
        from: ReadFrom,
        deadline: Instant,
        pids: &[NodeId],
        seen: &mut Attempts,
        attempt: &mut impl FnMut(&mut Client, NodeId) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let mut next_guess = 0;
        let mut pick = |hint: Option<NodeId>, seen: &Attempts| {
            let mut target = match from {
                ReadFrom::Server(pid) => return pid,
                ReadFrom::Leader => hint.unwrap_or_else(|| {
                    next_guess += 1;
                    pids[next_guess % pids.len()]
                }),
                ReadFrom::Followers => {
                    // Round-robin over the servers, skipping the leader while there is another.
                    next_guess += 1;
                    let mut pick = pids[next_guess % pids.len()];
                    if Some(pick) == hint && pids.len() > 1 {
                        next_guess += 1;
                        pick = pids[next_guess % pids.len()];
                    }
                    pick
                }
            };
            // A server whose answers fail our MAC check will not start to pass it.
            for _ in 0..pids.len() {
                if !seen.bad_mac(target) {
                    break;
                }
                next_guess += 1;
                target = pids[next_guess % pids.len()];
            }
            target
        };
        while Instant::now() < deadline {
            let target = pick(self.leader_hint, seen);
            let outcome = attempt(self, target);
            match outcome {
                Ok(result) => {
                    if from == ReadFrom::Leader {
                        self.leader_hint = Some(target);
                    }
                    return Ok(result);
                }
                Err(CallError::Refused(ClientError::NotLeader { leader })) => {
                    seen.record(target, Seen::Refused(ClientError::NotLeader { leader }));
                    self.leader_hint = leader.filter(|l| *l != target);
                    if let Some(l) = self.leader_hint.filter(|l| self.config.server(*l).is_err()) {
                        // A leader added at runtime: learn where it listens from the server
                        // that named it (thesis §4: the membership is in the log).
                        if self.membership(target).is_err() || self.config.server(l).is_err() {
                            self.leader_hint = None;
                        }
                    }
                    if self.leader_hint.is_none() || from != ReadFrom::Leader {
                        std::thread::sleep(Duration::from_millis(20)); // an election is under way
                    }
                }
                Err(CallError::Refused(e @ (ClientError::Dropped | ClientError::Busy))) => {
                    seen.record(target, Seen::Refused(e));
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(CallError::Unreachable) => {
                    seen.record(target, if self.sent { Seen::Silent } else { Seen::NotConnected });
                    self.leader_hint = None;
                }
                Err(CallError::BadKey { .. }) => {
                    seen.record(target, Seen::BadMac);
                    self.leader_hint = None;
                }
                Err(CallError::BadResponse(why)) => {
                    seen.record(target, Seen::Garbled(why));
                    self.leader_hint = None;
                }
                Err(other) => return Err(other),
            }
            if let Some(error) = seen.conclusive() {
                return Err(error);
            }
        }
        Err(seen.verdict())
    }
}
