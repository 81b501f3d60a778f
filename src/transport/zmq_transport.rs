//! ZeroMQ sockets for peer traffic: one PULL bound at our url, one PUSH per peer.
//!
//! Socket options follow DESIGN.md ("ZeroMQ socket options (measured here)"): without
//! `IMMEDIATE` libzmq queues messages for a dead peer and delivers them stale after it
//! restarts, and a blocking send to a dead peer would freeze the loop; so every send is
//! `DONTWAIT` and `EAGAIN` is a dropped message, which Raft tolerates (§5.3 retries).

use crate::core::NodeId;
use std::collections::BTreeMap;
use std::fmt;

/// Messages queued per peer before sends are dropped. Raft retransmits heartbeats and votes,
/// so a short queue only bounds staleness and memory when a peer is slow.
pub const PEER_SNDHWM: i32 = 256;
/// Inbound queue of the PULL socket, across all peers.
pub const PULL_RCVHWM: i32 = 4096;
/// First reconnect attempt after a peer goes away (ms); DESIGN.md measured 40–140 ms from a
/// peer's bind to our first delivery at 100 ms.
pub const RECONNECT_IVL_MS: i32 = 100;
/// Reconnect backoff ceiling (ms), so a long-dead peer costs little.
pub const RECONNECT_IVL_MAX_MS: i32 = 1000;
/// ZMTP heartbeat interval and timeout (ms): a hung peer's connection is torn down and its
/// queue dropped instead of filling up.
pub const ZMTP_HEARTBEAT_IVL_MS: i32 = 1000;
/// See [`ZMTP_HEARTBEAT_IVL_MS`].
pub const ZMTP_HEARTBEAT_TIMEOUT_MS: i32 = 3000;

/// A socket could not be created, bound or connected.
#[derive(Debug)]
pub struct TransportError {
    /// What we were doing, e.g. "bind tcp://127.0.0.1:7001 (PULL of server 1)".
    pub action: String,
    /// libzmq's error.
    pub source: zmq::Error,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {}: {}", self.action, self.source)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The ZeroMQ context for the servers and clients of `config`: `inproc://` endpoints reach only
/// sockets of the same context, so a config that uses any shares one context per process (its
/// servers and clients in this process then reach each other); otherwise a context of its own
/// (its own I/O thread: one cluster's load does not delay another's).
pub fn context_for(config: &crate::config::Config) -> zmq::Context {
    static SHARED: std::sync::OnceLock<zmq::Context> = std::sync::OnceLock::new();
    let inproc = config
        .servers
        .iter()
        .any(|s| s.endpoint.starts_with("inproc://") || s.client_endpoint.starts_with("inproc://"));
    if inproc {
        SHARED.get_or_init(zmq::Context::new).clone()
    } else {
        zmq::Context::new()
    }
}

/// Attach a description to a zmq result.
pub(crate) fn context<T>(result: zmq::Result<T>, action: impl FnOnce() -> String) -> Result<T, TransportError> {
    result.map_err(|source| TransportError { action: action(), source })
}

/// The peer sockets of one server. Not `Sync`: owned by the runtime's loop thread.
pub struct ZmqTransport {
    ctx: zmq::Context,
    pull: zmq::Socket,
    /// One PUSH per peer, with the endpoint it connects to.
    pushes: BTreeMap<NodeId, (String, zmq::Socket)>,
    /// Sends dropped because the peer was unreachable or its queue full.
    pub send_dropped: u64,
}

impl ZmqTransport {
    /// Bind our PULL at `endpoint` and connect one PUSH to each peer.
    pub fn new(
        ctx: &zmq::Context,
        me: NodeId,
        endpoint: &str,
        peers: &[(NodeId, String)],
        envelope_bytes_max: usize,
    ) -> Result<Self, TransportError> {
        let pull = context(ctx.socket(zmq::PULL), || "create PULL socket".into())?;
        let what = || format!("configure PULL socket of server {me}");
        context(pull.set_linger(0), what)?;
        context(pull.set_rcvhwm(PULL_RCVHWM), what)?;
        // libzmq drops larger messages before they reach us and closes the offending connection.
        context(pull.set_maxmsgsize(envelope_bytes_max as i64), what)?;
        context(pull.bind(endpoint), || format!("bind {endpoint} (PULL of server {me})"))?;
        let mut transport = ZmqTransport { ctx: ctx.clone(), pull, pushes: BTreeMap::new(), send_dropped: 0 };
        for (pid, peer_endpoint) in peers {
            transport.connect(*pid, peer_endpoint)?;
        }
        Ok(transport)
    }

    /// Open (or move) the PUSH socket to `pid` at `endpoint`: a member added at runtime, or one
    /// that moved (thesis §4: the membership in the log says where each member listens).
    pub fn connect(&mut self, pid: NodeId, endpoint: &str) -> Result<(), TransportError> {
        if self.pushes.get(&pid).is_some_and(|(at, _)| at == endpoint) {
            return Ok(());
        }
        let push = context(self.ctx.socket(zmq::PUSH), || "create PUSH socket".into())?;
        let what = || format!("configure PUSH socket to server {pid}");
        context(push.set_immediate(true), what)?;
        context(push.set_sndhwm(PEER_SNDHWM), what)?;
        context(push.set_linger(0), what)?;
        context(push.set_reconnect_ivl(RECONNECT_IVL_MS), what)?;
        context(push.set_reconnect_ivl_max(RECONNECT_IVL_MAX_MS), what)?;
        context(push.set_heartbeat_ivl(ZMTP_HEARTBEAT_IVL_MS), what)?;
        context(push.set_heartbeat_timeout(ZMTP_HEARTBEAT_TIMEOUT_MS), what)?;
        context(push.connect(endpoint), || format!("connect to {endpoint} (server {pid})"))?;
        self.pushes.insert(pid, (endpoint.to_string(), push));
        Ok(())
    }

    /// Close the PUSH socket to `pid` (a member removed).
    pub fn disconnect(&mut self, pid: NodeId) {
        self.pushes.remove(&pid);
    }

    /// The peers with a PUSH socket, and where each connects.
    pub fn peers(&self) -> impl Iterator<Item = (NodeId, &str)> {
        self.pushes.iter().map(|(p, (at, _))| (*p, at.as_str()))
    }

    /// The PULL socket, for the runtime's `zmq::poll`.
    pub fn pull(&self) -> &zmq::Socket {
        &self.pull
    }

    /// Send `bytes` to `to` without blocking. Returns false (and counts) when dropped.
    pub fn send(&mut self, to: NodeId, bytes: &[u8]) -> bool {
        let Some((_, push)) = self.pushes.get(&to) else {
            self.send_dropped += 1;
            return false;
        };
        match push.send(bytes, zmq::DONTWAIT) {
            Ok(()) => true,
            Err(e) => {
                // EAGAIN: no live connection (IMMEDIATE) or the queue is full. Raft resends.
                log::trace!("send to {to} dropped: {e}");
                self.send_dropped += 1;
                false
            }
        }
    }

    /// The next inbound message, if one is waiting.
    pub fn try_recv(&mut self) -> Option<Vec<u8>> {
        match self.pull.recv_bytes(zmq::DONTWAIT) {
            Ok(bytes) => Some(bytes),
            Err(zmq::Error::EAGAIN) => None,
            Err(e) => {
                log::warn!("PULL receive failed: {e}");
                None
            }
        }
    }
}
