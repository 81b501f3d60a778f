//! Rust client for the client protocol (used by the CLI, the tests and library users).
//!
//! One DEALER socket per server, an empty delimiter frame (so REQ-style servers and tools
//! interoperate), a deadline on every call: a server that does not answer in time is
//! reported unreachable, never waited on forever.

use crate::config::{Config, ServerConfig};
use crate::core::NodeId;
use crate::transport::client_wire::{
    ClientError, ClientRequest, ClientResponse, Request, Response, Status, CLIENT_WIRE_VERSION,
};
use crate::transport::codec::{decode, encode};
use std::fmt;
use std::time::{Duration, Instant};

/// Largest response accepted (1 MiB); a status is under 100 bytes.
pub const RESPONSE_BYTES_MAX: usize = 1 << 20;

/// Default deadline for one request: long enough for a busy loopback server, short enough
/// that `leader status` on a half-dead cluster answers at once.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer before the deadline (server down, partitioned, or overloaded).
    Unreachable,
    /// The server answered with an error.
    Refused(ClientError),
    /// The answer did not decode or did not match the request.
    BadResponse(String),
    /// A local ZeroMQ error (socket creation, connect).
    Local(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Unreachable => f.write_str("unreachable"),
            CallError::Refused(ClientError::BadRequest(why)) => write!(f, "bad request: {why}"),
            CallError::Refused(ClientError::WrongCluster { expected }) => {
                write!(
                    f,
                    "wrong cluster: the server belongs to cluster {expected}; check --config"
                )
            }
            CallError::BadResponse(why) => write!(f, "bad response: {why}"),
            CallError::Local(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for CallError {}

/// A client of one cluster.
pub struct Client {
    ctx: zmq::Context,
    config: Config,
    timeout: Duration,
    next_request_id: u64,
}

impl Client {
    /// A client for the cluster of `config`, with [`DEFAULT_TIMEOUT`].
    pub fn new(config: Config) -> Client {
        Client {
            ctx: zmq::Context::new(),
            config,
            timeout: DEFAULT_TIMEOUT,
            next_request_id: 1,
        }
    }

    /// Change the per-call deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The cluster's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Ask server `pid` for its status.
    pub fn status(&mut self, pid: NodeId) -> Result<Status, CallError> {
        let server = self
            .config
            .server(pid)
            .map_err(|e| CallError::Local(e.to_string()))?
            .clone();
        self.status_all_of(&[server])
            .pop()
            .expect("one answer per server")
            .1
    }

    /// Ask every server for its status, all at once; answers in pid order.
    pub fn status_all(&mut self) -> Vec<(NodeId, Result<Status, CallError>)> {
        let servers = self.config.servers.clone();
        self.status_all_of(&servers)
    }

    /// Ask the servers `pids` for their status, all at once; answers in the order given.
    pub fn status_of(&mut self, pids: &[NodeId]) -> Vec<(NodeId, Result<Status, CallError>)> {
        let mut servers = Vec::new();
        for &pid in pids {
            match self.config.server(pid) {
                Ok(server) => servers.push(server.clone()),
                Err(e) => return vec![(pid, Err(CallError::Local(e.to_string())))],
            }
        }
        self.status_all_of(&servers)
    }

    fn status_all_of(
        &mut self,
        servers: &[ServerConfig],
    ) -> Vec<(NodeId, Result<Status, CallError>)> {
        let mut pending = Vec::new();
        for server in servers {
            let request_id = self.next_request_id;
            self.next_request_id += 1;
            let request = ClientRequest {
                version: CLIENT_WIRE_VERSION,
                cluster_id: self.config.cluster_id,
                request_id,
                body: Request::Status,
            };
            pending.push((server.pid, request_id, self.send(server, &request)));
        }
        let deadline = Instant::now() + self.timeout;
        pending
            .into_iter()
            .map(|(pid, request_id, socket)| {
                let answer = socket
                    .and_then(|s| receive(&s, request_id, deadline))
                    .and_then(|body| match body {
                        Response::Status(status) => Ok(status),
                        Response::Error(e) => Err(CallError::Refused(e)),
                    });
                (pid, answer)
            })
            .collect()
    }

    fn send(
        &self,
        server: &ServerConfig,
        request: &ClientRequest,
    ) -> Result<zmq::Socket, CallError> {
        let local = |e: zmq::Error| {
            CallError::Local(format!("client socket for {}: {e}", server.client_endpoint))
        };
        let socket = self.ctx.socket(zmq::DEALER).map_err(local)?;
        socket.set_linger(0).map_err(local)?;
        socket.connect(&server.client_endpoint).map_err(local)?;
        // Queued until the connection is up; the deadline covers a server that never appears.
        socket
            .send_multipart([&b""[..], &encode(request)], zmq::DONTWAIT)
            .map_err(local)?;
        Ok(socket)
    }
}

/// Wait for the response to `request_id` on `socket` until `deadline`.
fn receive(
    socket: &zmq::Socket,
    request_id: u64,
    deadline: Instant,
) -> Result<Response, CallError> {
    loop {
        // Poll even when the deadline has passed: answers from other servers may have arrived
        // while we waited for a dead one, and they count.
        let left = deadline.saturating_duration_since(Instant::now());
        let ready = socket
            .poll(zmq::POLLIN, left.as_millis() as i64)
            .map_err(|e| CallError::Local(e.to_string()))?;
        if ready == 0 {
            if Instant::now() >= deadline {
                return Err(CallError::Unreachable);
            }
            continue;
        }
        let frames = socket
            .recv_multipart(0)
            .map_err(|e| CallError::Local(e.to_string()))?;
        let body = frames
            .last()
            .ok_or_else(|| CallError::BadResponse("empty message".into()))?;
        let response: ClientResponse = decode(body, RESPONSE_BYTES_MAX)
            .map_err(|e| CallError::BadResponse(format!("{e:?}")))?;
        if response.version != CLIENT_WIRE_VERSION {
            return Err(CallError::BadResponse(format!(
                "protocol version {}",
                response.version
            )));
        }
        if response.request_id == request_id || response.request_id == 0 {
            return Ok(response.body);
        }
        // An answer to an earlier request on this socket: skip it.
    }
}
