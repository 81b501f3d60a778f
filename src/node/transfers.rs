//! Leadership transfer requests (thesis §3.10) from clients (`leader transfer`) and from the
//! handle (`Server::transfer_leadership`, and `Server::stop`, which hands over first): started
//! in the core, answered once a new leader is known, or when the core abandons the transfer.

use super::clients::{send_response, ClientEndpoint};
use super::runtime::Runtime;
use crate::core::{NodeId, Role, Term};
use crate::transport::client_wire::{ClientError, ClientResponse, Response, CLIENT_WIRE_VERSION};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A transfer's outcome: the new leader and its term.
pub type TransferOutcome = Result<(NodeId, Term), ClientError>;

/// Where a transfer's answer goes.
pub(super) enum TransferReply {
    /// A client on the ROUTER socket.
    Client { route: Vec<Vec<u8>>, request_id: u64 },
    /// The handle (`Server::transfer_leadership`).
    Local(mpsc::Sender<TransferOutcome>),
}

impl TransferReply {
    fn send(self, client: &ClientEndpoint, outcome: TransferOutcome) {
        match self {
            TransferReply::Client { route, request_id } => {
                let body = match outcome {
                    Ok((leader, term)) => Response::Transferred { leader, term },
                    Err(e) => Response::Error(e),
                };
                send_response(client, route, ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body });
            }
            TransferReply::Local(sender) => drop(sender.send(outcome)),
        }
    }
}

/// A transfer waiting for a new leader.
pub(super) struct TransferWaiter {
    reply: TransferReply,
    /// The term it started in: a leader of a later term ends it.
    term: Term,
    target: NodeId,
    /// After this the answer is that no new leader came (the core gives up earlier, after an
    /// election timeout, while this server still leads; this covers the election it caused).
    deadline: Instant,
}

impl Runtime {
    /// Start handing over to `to` (or the most up-to-date follower) and answer through `reply`
    /// once it is done.
    pub(super) fn transfer_request(&mut self, reply: TransferReply, to: Option<NodeId>) {
        let term = self.driver.raft.current_term();
        match self.driver.raft.transfer_leadership(to) {
            Ok(target) if target == self.driver.raft.id() => reply.send(&self.client, Ok((target, term))),
            Ok(target) => {
                let deadline = Instant::now() + self.election_timeout() * 3;
                self.transfers.push(TransferWaiter { reply, term, target, deadline });
            }
            Err(crate::core::TransferError::NotLeader { leader_hint }) => {
                reply.send(&self.client, Err(ClientError::NotLeader { leader: leader_hint }))
            }
            Err(e) => reply.send(&self.client, Err(ClientError::Unavailable(e.to_string()))),
        }
    }

    /// Answer the transfers that are over: a leader of a later term is known (normally the
    /// target), or this server still leads and the core abandoned the transfer, or the
    /// deadline passed.
    pub(super) fn answer_transfers(&mut self) {
        if self.transfers.is_empty() {
            return;
        }
        let raft = &self.driver.raft;
        let (me, soft, target_now) = (raft.id(), raft.soft_state(), raft.transfer_target());
        let now = Instant::now();
        let mut waiting = Vec::new();
        for w in std::mem::take(&mut self.transfers) {
            let outcome = match soft.leader_id {
                Some(leader) if soft.term > w.term => Some(Ok((leader, soft.term))),
                _ if soft.role == Role::Leader && soft.term == w.term && target_now.is_none() => {
                    Some(Err(ClientError::Unavailable(format!(
                        "the transfer to server {} did not finish within an election timeout; server {me} leads on",
                        w.target
                    ))))
                }
                _ if now >= w.deadline => Some(Err(ClientError::Unavailable(format!(
                    "no new leader within {} ms of handing over to server {}",
                    (self.election_timeout() * 3).as_millis(),
                    w.target
                )))),
                _ => None,
            };
            match outcome {
                Some(outcome) => w.reply.send(&self.client, outcome),
                None => waiting.push(w),
            }
        }
        self.transfers = waiting;
    }

    /// The server is stopping: nobody will answer the transfers later.
    pub(super) fn fail_transfers(&mut self) {
        for w in std::mem::take(&mut self.transfers) {
            w.reply.send(&self.client, Err(ClientError::Dropped));
        }
    }

    /// The minimum election timeout, as the core counts it.
    pub(super) fn election_timeout(&self) -> Duration {
        self.tick * self.election_ticks
    }
}
