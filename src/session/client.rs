//! The client side of sessions: a [`Client`] whose proposals carry a session header.

use super::{encode_command, SessionResponse};
use crate::client::{CallError, Client};
use crate::core::LogIndex;
use std::fmt;

/// Why a [`SessionClient`] proposal failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The client call failed. After [`CallError::Timeout`] or [`CallError::NoAnswer`] the
    /// command may or may not have been applied: [`SessionClient::retry_last`] sends it again
    /// with the same sequence number, so it is applied at most once in all.
    Call(CallError),
    /// The cluster has already applied a later command of this client id: this one was not
    /// applied (two clients share an id, or a very old retry).
    Stale {
        /// The last sequence number the cluster applied for this client id.
        last: u64,
    },
    /// The state machine refused the command's header or found no command after it (an empty
    /// command is refused here, before anything is sent). Not applied.
    BadCommand(String),
    /// The answer is not a session response: is the cluster's state machine wrapped in
    /// [`Sessions`](super::Sessions)?
    BadResponse(String),
    /// [`SessionClient::retry_last`] before any proposal.
    NothingToRetry,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Call(e) => write!(f, "{e}"),
            SessionError::Stale { last } => {
                write!(f, "stale sequence number: this client's command {last} was applied after it; not applied")
            }
            SessionError::BadCommand(why) => write!(f, "bad command: {why}; not applied"),
            SessionError::BadResponse(why) => {
                write!(f, "bad response: {why} (is the state machine wrapped in leader::session::Sessions?)")
            }
            SessionError::NothingToRetry => f.write_str("nothing to retry: no command was proposed yet"),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<CallError> for SessionError {
    fn from(e: CallError) -> Self {
        SessionError::Call(e)
    }
}

/// A [`Client`] for a state machine wrapped in [`Sessions`](super::Sessions): each
/// [`propose`](SessionClient::propose) adds a session header with this client's id and the
/// next sequence number, and every resend of it ([`Client::propose`]'s own retries across
/// timeouts and leader changes, and [`retry_last`](SessionClient::retry_last)) keeps that
/// number, so the command is applied once however often it is committed.
///
/// One command at a time: the wrapper remembers only a client's last command, so a new
/// proposal answers for the previous one (it can no longer be retried).
pub struct SessionClient {
    client: Client,
    client_id: u64,
    seq: u64,
    /// The last command sent, header included, for `retry_last`.
    last: Option<Vec<u8>>,
}

impl SessionClient {
    /// Sessions over `client`, with a fresh random client id (never 0, "no session").
    pub fn new(client: Client) -> SessionClient {
        Self::resume(client, rand::random::<u64>() | 1, 0)
    }

    /// Continue the session `client_id` whose last proposal had sequence number `last_seq` (for
    /// a client that keeps its id and sequence number across its own restarts). Two clients
    /// using one id at once refuse each other's commands as stale or answer them wrongly.
    pub fn resume(client: Client, client_id: u64, last_seq: u64) -> SessionClient {
        SessionClient { client, client_id, seq: last_seq, last: None }
    }

    /// This session's client id.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The sequence number of the last proposal (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The client underneath, for reads ([`Client::read`]: queries carry no header) and status.
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Propose `command` of the inner state machine with the next sequence number; the log
    /// index and the inner machine's response (for a retried command, the response it gave
    /// the first time).
    pub fn propose(&mut self, command: Vec<u8>) -> Result<(LogIndex, Vec<u8>), SessionError> {
        if command.is_empty() {
            // An empty entry would be a Raft no-op, never applied: refuse it before it costs a
            // sequence number.
            return Err(SessionError::BadCommand("empty command".into()));
        }
        self.seq += 1;
        self.last = Some(encode_command(self.client_id, self.seq, &command));
        self.retry_last()
    }

    /// Send the last proposed command again, with the same sequence number: after a
    /// [`SessionError::Call`] timeout, when its outcome is unknown, this applies it if it was
    /// not, or answers what it returned if it was (unless its session was forgotten meanwhile:
    /// see the module docs).
    pub fn retry_last(&mut self) -> Result<(LogIndex, Vec<u8>), SessionError> {
        let command = self.last.clone().ok_or(SessionError::NothingToRetry)?;
        let (index, bytes) = self.client.propose(command)?;
        match SessionResponse::decode(&bytes).map_err(SessionError::BadResponse)? {
            SessionResponse::Applied(response) => Ok((index, response)),
            SessionResponse::Stale { last } => Err(SessionError::Stale { last }),
            SessionResponse::BadCommand(why) => Err(SessionError::BadCommand(why)),
        }
    }
}
