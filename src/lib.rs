#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod client;
pub mod codec;
pub mod config;
pub mod core;
pub mod fuzz;
pub mod kv;
pub mod node;
pub mod process;
pub mod sim;
pub mod storage;
pub mod transport;
