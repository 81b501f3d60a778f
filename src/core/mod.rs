//! The sans-IO Raft core: a pure, deterministic state machine.
mod types;
pub use types::{HardState, LogIndex, NodeId, Term};
