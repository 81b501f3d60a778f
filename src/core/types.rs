//! Distinct types for distinct quantities (Raft paper, Figure 2 names).
//!
//! Each is a transparent newtype over `u64`: bincode encodes it exactly as the `u64` it wraps
//! (8 bytes, little endian), so the wire format stays simple for peers in other languages.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! u64_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

u64_newtype!(
    /// A Raft term (§5.1): a logical clock that only moves forward.
    Term
);
u64_newtype!(
    /// A position in the replicated log; the first entry has index 1, 0 means "none".
    LogIndex
);
u64_newtype!(
    /// A server's identity: the `mypid` of config.json.
    NodeId
);

/// The state a server must keep on stable storage before it answers any RPC (Figure 2,
/// "Persistent state on all servers").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Latest term this server has seen.
    pub current_term: Term,
    /// Candidate that received this server's vote in `current_term`, if any.
    pub voted_for: Option<NodeId>,
    /// Highest log index known to be committed (a hint; safe to lose, never to overstate).
    pub commit_index: LogIndex,
}
