//! The client endpoint of the runtime: decoding requests, handing proposals to the driver as
//! one batch, and delivering each proposal's answer (the driver decides it: applied, or
//! definitely not going to be by this leader). Every proposal gets exactly one answer.

use super::runtime::Runtime;
use super::transfers::TransferReply;
use crate::core::{LogIndex, Term};
use crate::driver::Outcome;
use crate::transport::auth::{self, ClusterKey};
use crate::transport::client_wire::{
    ClientError, ClientRequest, ClientResponse, Counter, Request, Response, CLIENT_REQUEST_BYTES_MAX,
    CLIENT_WIRE_VERSION, FETCH_SNAPSHOT_BYTES_MAX,
};
use crate::transport::codec::{decode, encode, DecodeError};
use std::sync::mpsc;

/// Client requests read per turn: they become one batch in the log (one fsync, one message
/// per follower), and the bound keeps a flood from starving ticks and peer traffic.
const CLIENT_BATCH_MAX: usize = 1024;

/// Where a proposal's answer goes.
pub(super) enum Replier {
    /// A client on the ROUTER socket: its routing frames and request id.
    Client { route: Vec<Vec<u8>>, request_id: u64 },
    /// A caller of `Server::propose` in this process.
    Local(mpsc::Sender<Outcome>),
    /// A client's `ChangeMembership`: answered `MembershipChanged` once the entry is applied.
    Membership { route: Vec<Vec<u8>>, request_id: u64 },
}

impl Replier {
    /// Deliver `outcome` to whoever proposed.
    pub(super) fn reply(self, client: &ClientEndpoint, outcome: Outcome) {
        match self {
            Replier::Client { route, request_id } => {
                let body = match outcome {
                    Ok((index, result)) => Response::Applied { index, result },
                    Err(e) => Response::Error(e),
                };
                send_response(client, route, ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body });
            }
            // The caller may have given up waiting; then nobody needs the answer.
            Replier::Local(sender) => drop(sender.send(outcome)),
            Replier::Membership { route, request_id } => {
                let body = match outcome {
                    Ok((index, _)) => Response::MembershipChanged { index },
                    Err(e) => Response::Error(e),
                };
                send_response(client, route, ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body });
            }
        }
    }
}

/// The ROUTER socket clients talk to, with the cluster key that authenticates both ways.
pub(super) struct ClientEndpoint {
    /// The socket.
    pub socket: zmq::Socket,
    /// The cluster key, if the cluster has one.
    pub key: Option<ClusterKey>,
}

pub(super) fn send_response(client: &ClientEndpoint, mut route: Vec<Vec<u8>>, response: ClientResponse) {
    route.push(auth::seal(client.key.as_ref(), encode(&response)));
    if let Err(e) = client.socket.send_multipart(route, zmq::DONTWAIT) {
        // The client is gone or not reading: it will time out and retry.
        log::debug!("client reply dropped: {e}");
    }
}

/// A `Snapshot` request waiting for a snapshot at or beyond `target` to be durable.
pub(super) struct SnapshotWaiter {
    route: Vec<Vec<u8>>,
    request_id: u64,
    target: LogIndex,
}

/// A status or inspect request to answer after the turn's Ready is handled.
pub(super) struct StatusRequest {
    route: Vec<Vec<u8>>,
    request_id: u64,
    /// `Inspect` rather than `Status`.
    inspect: bool,
}

impl Runtime {
    /// Read up to a batch of client requests: proposals go into the log as one batch, status
    /// requests are returned to be answered at the end of the turn, errors answered now.
    pub(super) fn serve_clients(&mut self) -> Vec<StatusRequest> {
        let mut statuses = Vec::new();
        let mut proposals = Vec::new();
        let mut reads = Vec::new();
        for _ in 0..CLIENT_BATCH_MAX {
            let Ok(mut frames) = self.client.socket.recv_multipart(zmq::DONTWAIT) else {
                break;
            };
            let Some(frame) = frames.pop() else { continue };
            // With a cluster key, an unauthenticated request is not decoded; it is answered
            // with one small unsealed frame, so that a client without the key (or with another)
            // can tell "wrong key" from "no server" (docs/security.md: bounded, 18 bytes,
            // one per request, only to the connection that sent it).
            let Some(body) = auth::open(self.client.key.as_ref(), &frame) else {
                super::lock(&self.shared.drops).count(crate::transport::DropReason::BadMac);
                frames.push(encode(&ClientResponse {
                    version: CLIENT_WIRE_VERSION,
                    request_id: 0,
                    body: Response::Error(ClientError::Unauthenticated),
                }));
                if let Err(e) = self.client.socket.send_multipart(frames, zmq::DONTWAIT) {
                    log::debug!("unauthenticated answer dropped: {e}");
                }
                continue;
            };
            match self.check_request(body) {
                Ok(ClientRequest { request_id, body: Request::Status, .. }) => {
                    statuses.push(StatusRequest { route: frames, request_id, inspect: false })
                }
                Ok(ClientRequest { request_id, body: Request::Membership, .. }) => {
                    let body = Response::Membership(self.membership_info());
                    send_response(
                        &self.client,
                        frames,
                        ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body },
                    );
                }
                Ok(ClientRequest { request_id, body: Request::ChangeMembership { change }, .. }) => {
                    let (driver, mut io) = self.io();
                    driver.change_membership(Replier::Membership { route: frames, request_id }, change, &mut io);
                }
                Ok(ClientRequest { request_id, body: Request::Inspect, .. }) => {
                    statuses.push(StatusRequest { route: frames, request_id, inspect: true })
                }
                Ok(ClientRequest { request_id, body: Request::Propose { command }, .. }) => {
                    proposals.push((Replier::Client { route: frames, request_id }, command))
                }
                Ok(ClientRequest { request_id, body: Request::Counters, .. }) => {
                    let counters = super::lock(&self.shared.drops).by_name();
                    let counters = counters.into_iter().map(|(n, value)| Counter { name: n.into(), value }).collect();
                    let body = Response::Counters(counters);
                    send_response(
                        &self.client,
                        frames,
                        ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body },
                    );
                }
                Ok(ClientRequest { request_id, body: Request::Read { query, mode }, .. }) => {
                    reads.push((Replier::Client { route: frames, request_id }, query, mode))
                }
                Ok(ClientRequest { request_id, body: Request::TransferLeadership { to }, .. }) => {
                    self.transfer_request(TransferReply::Client { route: frames, request_id }, to)
                }
                Ok(ClientRequest { request_id, body: Request::Snapshot, .. }) => {
                    self.snapshot_request(frames, request_id)
                }
                Ok(ClientRequest { request_id, body: Request::FetchSnapshot { index, term, offset }, .. }) => {
                    let body = self.fetch_snapshot(index, term, offset);
                    send_response(
                        &self.client,
                        frames,
                        ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body },
                    );
                }
                Err((request_id, error)) => {
                    let response =
                        ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body: Response::Error(error) };
                    send_response(&self.client, frames, response);
                }
            }
        }
        let (driver, mut io) = self.io();
        driver.propose(proposals, &mut io);
        for (replier, query, mode) in reads {
            driver.read(replier, query, mode, &mut io);
        }
        statuses
    }

    fn check_request(&self, bytes: &[u8]) -> Result<ClientRequest, (u64, ClientError)> {
        let request: ClientRequest = decode(bytes, CLIENT_REQUEST_BYTES_MAX).map_err(|e| {
            let why = match e {
                DecodeError::Oversize => "request too large",
                DecodeError::Truncated => "request truncated",
                DecodeError::Garbage => "request is not a valid ClientRequest",
            };
            (0, ClientError::BadRequest(why.into()))
        })?;
        if request.version != CLIENT_WIRE_VERSION {
            let why = format!("client protocol version {} (this server speaks {CLIENT_WIRE_VERSION})", request.version);
            return Err((request.request_id, ClientError::BadRequest(why)));
        }
        if request.cluster_id != self.cluster_id {
            return Err((request.request_id, ClientError::WrongCluster { expected: self.cluster_id }));
        }
        if matches!(&request.body, Request::Propose { command } if command.is_empty()) {
            return Err((request.request_id, ClientError::BadRequest("empty command".into())));
        }
        Ok(request)
    }

    /// `leader snapshot`: take one now (or answer with the latest if nothing was applied
    /// since), answered once it is durable.
    fn snapshot_request(&mut self, route: Vec<Vec<u8>>, request_id: u64) {
        let applied = self.driver.applied();
        if applied > self.driver.last_snapshot() {
            let (driver, mut io) = self.io();
            driver.request_snapshot(&mut io);
            self.snapshot_waiters.push(SnapshotWaiter { route, request_id, target: applied });
            return;
        }
        let body = match self.driver.raft.snapshot() {
            Some(s) => Response::Snapshot { index: s.index, term: s.term, total_len: s.total_len },
            None => Response::Error(ClientError::BadRequest("nothing to snapshot: no entry applied yet".into())),
        };
        send_response(&self.client, route, ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body });
    }

    /// Answer the `Snapshot` requests whose snapshot is durable now.
    pub(super) fn answer_snapshot_waiters(&mut self) {
        if self.snapshot_waiters.is_empty() {
            return;
        }
        let Some(latest) = self.driver.raft.snapshot() else { return };
        let done = self.driver.last_snapshot();
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.snapshot_waiters).into_iter().partition(|w| done >= w.target);
        self.snapshot_waiters = waiting;
        for w in ready {
            let body = Response::Snapshot { index: latest.index, term: latest.term, total_len: latest.total_len };
            send_response(
                &self.client,
                w.route,
                ClientResponse { version: CLIENT_WIRE_VERSION, request_id: w.request_id, body },
            );
        }
    }

    /// Bytes of the latest snapshot image (`index` 0) or of (`index`, `term`) while latest.
    fn fetch_snapshot(&mut self, index: LogIndex, term: Term, offset: u64) -> Response {
        let refuse = |why: String| Response::Error(ClientError::BadRequest(why));
        let Some(latest) = self.driver.raft.snapshot() else {
            return refuse("this server has no snapshot yet".into());
        };
        if index.0 != 0 && (index, term) != (latest.index, latest.term) {
            return refuse(format!(
                "snapshot {index} (term {term}) is no longer the latest ({} term {}); fetch it again",
                latest.index, latest.term
            ));
        }
        if offset > latest.total_len {
            return refuse(format!("offset {offset} is past the image's {} bytes", latest.total_len));
        }
        let len = (latest.total_len - offset).min(FETCH_SNAPSHOT_BYTES_MAX as u64) as usize;
        match self.read_snapshot(latest.index, latest.term, offset, len) {
            Some(data) => Response::SnapshotChunk {
                index: latest.index,
                term: latest.term,
                total_len: latest.total_len,
                offset,
                data,
            },
            None => refuse(format!("snapshot {} (term {}) is gone; fetch it again", latest.index, latest.term)),
        }
    }

    pub(super) fn answer_statuses(&mut self, statuses: Vec<StatusRequest>) {
        let status = self.status();
        for StatusRequest { route, request_id, inspect } in statuses {
            let body = match inspect {
                false => Response::Status(status),
                true => Response::Inspection(Box::new(self.inspection())),
            };
            let response = ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body };
            send_response(&self.client, route, response);
        }
    }
}
