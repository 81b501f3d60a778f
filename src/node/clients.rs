//! The client endpoint of the runtime: decoding requests, handing proposals to the driver as
//! one batch, and delivering each proposal's answer (the driver decides it: applied, or
//! definitely not going to be by this leader). Every proposal gets exactly one answer.

use super::runtime::Runtime;
use crate::driver::Outcome;
use crate::transport::auth::{self, ClusterKey};
use crate::transport::client_wire::{
    ClientError, ClientRequest, ClientResponse, Counter, Request, Response, CLIENT_REQUEST_BYTES_MAX,
    CLIENT_WIRE_VERSION,
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

fn send_response(client: &ClientEndpoint, mut route: Vec<Vec<u8>>, response: ClientResponse) {
    route.push(auth::seal(client.key.as_ref(), encode(&response)));
    if let Err(e) = client.socket.send_multipart(route, zmq::DONTWAIT) {
        // The client is gone or not reading: it will time out and retry.
        log::debug!("client reply dropped: {e}");
    }
}

/// A status request to answer after the turn's Ready is handled.
pub(super) struct StatusRequest {
    route: Vec<Vec<u8>>,
    request_id: u64,
}

impl Runtime {
    /// Read up to a batch of client requests: proposals go into the log as one batch, status
    /// requests are returned to be answered at the end of the turn, errors answered now.
    pub(super) fn serve_clients(&mut self) -> Vec<StatusRequest> {
        let mut statuses = Vec::new();
        let mut proposals = Vec::new();
        for _ in 0..CLIENT_BATCH_MAX {
            let Ok(mut frames) = self.client.socket.recv_multipart(zmq::DONTWAIT) else {
                break;
            };
            let Some(frame) = frames.pop() else { continue };
            // With a cluster key, an unauthenticated request is dropped before decoding.
            let Some(body) = auth::open(self.client.key.as_ref(), &frame) else {
                super::lock(&self.shared.drops).count(crate::transport::DropReason::BadMac);
                continue;
            };
            match self.check_request(body) {
                Ok(ClientRequest { request_id, body: Request::Status, .. }) => {
                    statuses.push(StatusRequest { route: frames, request_id })
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
                Err((request_id, error)) => {
                    let response =
                        ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body: Response::Error(error) };
                    send_response(&self.client, frames, response);
                }
            }
        }
        let (driver, mut io) = self.io();
        driver.propose(proposals, &mut io);
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

    pub(super) fn answer_statuses(&mut self, statuses: Vec<StatusRequest>) {
        let status = self.status();
        for StatusRequest { route, request_id } in statuses {
            let response = ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body: Response::Status(status) };
            send_response(&self.client, route, response);
        }
    }
}
