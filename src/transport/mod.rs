//! Moving bytes between servers and clients: the wire codec, the peer envelope, the client
//! protocol and the ZeroMQ sockets. No protocol decisions here.

pub mod auth;
pub mod client_wire;
pub use crate::codec;
pub mod envelope;
pub mod zmq_transport;

pub use envelope::{AppMessage, Body, DropCounts, DropReason, Envelope, Receiver, ENVELOPE_BYTES_MAX, WIRE_VERSION};
pub use zmq_transport::{TransportError, ZmqTransport};
#[cfg(test)]
mod tests;
