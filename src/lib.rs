#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod client;
pub mod codec;
pub mod config;
pub mod core;
pub mod driver;
pub mod fuzz;
pub mod kv;
pub mod node;
pub mod process;
pub mod sim;
pub mod storage;
pub mod transport;

/// The message of a caught panic (what `panic!`/`assert!` printed), for reports.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic without a message".into())
}
