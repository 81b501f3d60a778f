#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod core;
pub mod node;
pub mod process;
pub mod storage;
pub mod transport;
