//! `leader`: Raft consensus over ZeroMQ. See ARCHITECTURE.md for the layers.
#![warn(missing_docs)]

pub mod config;
pub mod core;
pub mod storage;
