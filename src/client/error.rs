//! Why a client call failed, and what the command line prints for it.
//!
//! The messages keep four situations apart that used to look the same (issue 13): nothing to
//! talk to, servers that answer without a leader, a cluster key that differs, and a write whose
//! outcome is unknown. Only the last says "it may still apply".

use crate::core::NodeId;
use crate::transport::client_wire::ClientError;
use std::fmt;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer from this one server before the per-request deadline (down, partitioned,
    /// overloaded, or no connection to it).
    Unreachable,
    /// The server answered with an error.
    Refused(ClientError),
    /// The answer did not decode or did not match the request.
    BadResponse(String),
    /// A local ZeroMQ error (socket creation, connect) or a pid not in the config.
    Local(String),
    /// A write was sent to a server that may have appended it (it went silent, or its
    /// leadership ended before the entry committed: `Dropped`), other servers answered, and no
    /// leader applied it before the deadline: it may or may not have been applied.
    Timeout,
    /// A read was sent to a server that then went silent, and no other server answered it
    /// before the deadline (nothing was changed: reads never apply anything).
    ReadTimeout,
    /// Requests were sent over live connections, but not one answer came back before the
    /// deadline (servers stuck or overloaded).
    NoAnswer {
        /// The operation was a write: it may still apply if a server appended it.
        write: bool,
    },
    /// Not one server completed a connection within about a second
    /// ([`CONNECT_WAIT`](super::CONNECT_WAIT)): none is running, or none is reachable at the
    /// config's `client_url`s. Nothing was sent, so nothing was changed.
    NothingReachable {
        /// Servers tried (every one the call could use).
        servers: usize,
    },
    /// Servers answered, but none would serve the operation before the deadline: none leads
    /// (an election under way, or no quorum up). Nothing was appended.
    NoLeader {
        /// Servers the call could use.
        servers: usize,
        /// What each server that answered said last, in pid order.
        said: Vec<(NodeId, String)>,
    },
    /// Server `server` requires the cluster key and this client has none (it answered
    /// [`ClientError::Unauthenticated`]).
    Unauthenticated {
        /// The server that said so.
        server: NodeId,
    },
    /// Nothing authentic answered, and `servers` servers answered frames whose MAC does not
    /// verify under this client's key: this client's cluster key differs from the servers'
    /// (or it has a key and they have none).
    BadKey {
        /// Servers whose answers failed the MAC check.
        servers: usize,
    },
    /// The request is larger than a server accepts: refused before anything is sent, so
    /// nothing was changed.
    TooLarge {
        /// What was measured: `"key and value"` (a key-value operation, against
        /// [`KV_DATA_BYTES_MAX`](crate::kv::KV_DATA_BYTES_MAX)), `"command"` (a raw proposal,
        /// against [`COMMAND_BYTES_MAX`](crate::core::COMMAND_BYTES_MAX)) or `"request"` (the
        /// encoded, tagged frame, against
        /// [`CLIENT_REQUEST_BYTES_MAX`](crate::transport::client_wire::CLIENT_REQUEST_BYTES_MAX)).
        what: &'static str,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

impl CallError {
    /// True when the operation may have been applied although the call failed (a write whose
    /// outcome is unknown): retry it with the same client (same sequence number) or check.
    pub fn maybe_applied(&self) -> bool {
        matches!(self, CallError::Timeout | CallError::NoAnswer { write: true })
    }
}

/// "1.5 MiB"-style size for messages.
fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 19) {
        format!("{} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Unreachable => f.write_str("unreachable"),
            CallError::Refused(ClientError::BadRequest(why)) => write!(f, "bad request: {why}"),
            CallError::Refused(ClientError::WrongCluster { expected }) => {
                write!(f, "wrong cluster: the server belongs to cluster {expected}; check --config")
            }
            CallError::Refused(ClientError::NotLeader { leader: Some(l) }) => {
                write!(f, "not the leader (server {l} is)")
            }
            CallError::Refused(ClientError::NotLeader { leader: None }) => f.write_str("not the leader (none known)"),
            CallError::Refused(ClientError::Dropped) => f.write_str("dropped by a leader change (outcome unknown)"),
            CallError::Refused(ClientError::Busy) => f.write_str("server busy"),
            CallError::Refused(ClientError::Unavailable(why)) => write!(f, "unavailable: {why}"),
            CallError::Refused(ClientError::Unauthenticated) => {
                f.write_str("the server requires the cluster key (cluster_key_file / --cluster-key)")
            }
            CallError::BadResponse(why) => write!(f, "bad response: {why}"),
            CallError::Local(why) => write!(f, "{why}"),
            CallError::Timeout => {
                f.write_str("timed out: no leader applied the operation in time (it may still apply)")
            }
            CallError::ReadTimeout => {
                f.write_str("timed out: no server answered the read in time (nothing was changed)")
            }
            CallError::NoAnswer { write } => write!(
                f,
                "timed out: servers accepted connections but none answered (stuck or overloaded?){}",
                if *write { "; the write may still apply if a server received it" } else { "" }
            ),
            CallError::NothingReachable { servers } => write!(
                f,
                "nothing reachable: none of the {} accepts connections (are they running? check the \
                 config's client_url); nothing was sent",
                plural(*servers, "server", "servers")
            ),
            CallError::NoLeader { servers, said } => {
                let verb = if said.len() == 1 { "answers" } else { "answer" };
                write!(f, "no leader: {} of {servers} servers {verb}, none leads: no quorum?", said.len())?;
                let what: Vec<String> = said.iter().map(|(pid, s)| format!("server {pid}: {s}")).collect();
                write!(f, " ({}); nothing was changed", what.join("; "))
            }
            CallError::Unauthenticated { server } => write!(
                f,
                "server {server} requires the cluster key (cluster_key_file / --cluster-key); this client has none"
            ),
            CallError::BadKey { servers } => write!(
                f,
                "no server answered; {} answered frames with a bad MAC: this client's cluster key differs from \
                 the servers' (cluster_key_file / --cluster-key)",
                plural(*servers, "server", "servers")
            ),
            CallError::TooLarge { what: "key and value", bytes, limit } => {
                write!(f, "value too large: key and value are {bytes} bytes (limit {limit}, {})", human(*limit))
            }
            CallError::TooLarge { what, bytes, limit } => {
                write!(f, "{what} too large: {bytes} bytes (limit {limit}, {})", human(*limit))
            }
        }
    }
}

impl std::error::Error for CallError {}
