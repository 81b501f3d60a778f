//! The peer envelope: what travels between servers' PUSH and PULL sockets.
//!
//! A PULL socket does not say who sent a message, so the envelope names `from`; it also names
//! the cluster and the receiver so that a misconfigured or foreign sender is dropped, not
//! obeyed. Byte layout: docs/wire.md.

use super::codec::{decode, DecodeError};
use crate::core::{Message, NodeId};
use serde::{Deserialize, Serialize};

/// Version of the envelope format; the first two bytes of every envelope (u16 LE).
pub const WIRE_VERSION: u16 = 1;

/// Largest envelope frame accepted, tag included: 2 MiB (2,097,152 bytes). Heartbeats and
/// votes are ~60 bytes; the limit bounds what a faulty or hostile sender can make us allocate,
/// and must hold the largest AppendEntries a leader sends: either one entry of up to
/// [`COMMAND_BYTES_MAX`](crate::core::COMMAND_BYTES_MAX) (a message always carries at least
/// one entry) or up to `Options::bytes_per_message_max` (512 KiB) of smaller ones with their
/// 24 bytes of framing each (at most 4,096 of them, about 608 KiB in all).
pub const ENVELOPE_BYTES_MAX: usize = 2 << 20;

/// Room for the envelope's and the AppendEntries' own fields around one entry (they take 106
/// bytes), and the cluster key's tag.
const APPEND_FRAMING_BYTES: usize = 1024 + super::auth::TAG_BYTES;

// An AppendEntries carrying the largest command must fit, or a follower could never receive it.
const _: () = assert!(crate::core::COMMAND_BYTES_MAX + APPEND_FRAMING_BYTES <= ENVELOPE_BYTES_MAX);

/// One message between servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`WIRE_VERSION`].
    pub version: u16,
    /// Cluster identity (config.json `cluster_id`, or its documented default).
    pub cluster_id: u64,
    /// Sender pid.
    pub from: NodeId,
    /// Receiver pid.
    pub to: NodeId,
    /// The payload.
    pub body: Body,
}

/// What an envelope carries. Variants are only ever appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A Raft protocol message for the core.
    Raft(Message),
    /// An application message (the original's Outbox/Inbox).
    App(AppMessage),
}

/// An application message: opaque bytes from one server to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppMessage {
    /// Sender-chosen id (unique per sender process, increasing).
    pub msg_id: u64,
    /// True when the sender broadcast it to every peer.
    pub broadcast: bool,
    /// The application's bytes.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// Why an inbound envelope was dropped. Each is counted ([`DropCounts`]) and logged at debug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Larger than the envelope limit.
    Oversize,
    /// Ended early.
    Truncated,
    /// Not a valid envelope.
    Garbage,
    /// A format version we do not speak.
    WrongVersion,
    /// Another cluster's envelope.
    WrongCluster,
    /// Addressed to another server.
    WrongReceiver,
    /// From a pid that is not one of our peers.
    UnknownSender,
    /// From a peer the runtime is told to treat as partitioned away.
    Blocked,
    /// The cluster has a key and the frame's HMAC tag did not verify.
    BadMac,
}

/// Counters of dropped inbound envelopes, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// See [`DropReason::Oversize`].
    pub oversize: u64,
    /// See [`DropReason::Truncated`].
    pub truncated: u64,
    /// See [`DropReason::Garbage`].
    pub garbage: u64,
    /// See [`DropReason::WrongVersion`].
    pub wrong_version: u64,
    /// See [`DropReason::WrongCluster`].
    pub wrong_cluster: u64,
    /// See [`DropReason::WrongReceiver`].
    pub wrong_receiver: u64,
    /// See [`DropReason::UnknownSender`].
    pub unknown_sender: u64,
    /// See [`DropReason::Blocked`].
    pub blocked: u64,
    /// See [`DropReason::BadMac`].
    pub bad_mac: u64,
    /// What the core dropped or ignored after decoding: invalid messages by the rule they
    /// broke (validate.rs), stale terms, (pre-)votes ignored while a leader is alive, …
    pub core: crate::core::Ignored,
}

impl DropCounts {
    /// Count one drop.
    pub fn count(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::Oversize => &mut self.oversize,
            DropReason::Truncated => &mut self.truncated,
            DropReason::Garbage => &mut self.garbage,
            DropReason::WrongVersion => &mut self.wrong_version,
            DropReason::WrongCluster => &mut self.wrong_cluster,
            DropReason::WrongReceiver => &mut self.wrong_receiver,
            DropReason::UnknownSender => &mut self.unknown_sender,
            DropReason::Blocked => &mut self.blocked,
            DropReason::BadMac => &mut self.bad_mac,
        };
        *counter += 1;
    }

    /// Every counter with a stable snake_case name: the transport's reasons, then the core's.
    pub fn by_name(&self) -> Vec<(&'static str, u64)> {
        let mut out = vec![
            ("oversize", self.oversize),
            ("truncated", self.truncated),
            ("garbage", self.garbage),
            ("wrong_version", self.wrong_version),
            ("wrong_cluster", self.wrong_cluster),
            ("wrong_receiver", self.wrong_receiver),
            ("unknown_sender", self.unknown_sender),
            ("blocked", self.blocked),
            ("bad_mac", self.bad_mac),
        ];
        out.extend(self.core.by_name());
        out
    }

    /// Envelopes dropped unread, plus messages the core dropped as invalid.
    pub fn total(&self) -> u64 {
        self.oversize
            + self.truncated
            + self.garbage
            + self.wrong_version
            + self.wrong_cluster
            + self.wrong_receiver
            + self.unknown_sender
            + self.blocked
            + self.bad_mac
            + self.core.invalid_total()
    }
}

/// Who a receiving server is: what [`Receiver::open_envelope`] checks an envelope against.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Our cluster identity.
    pub cluster_id: u64,
    /// Our pid.
    pub me: NodeId,
    /// Every peer we accept envelopes from.
    pub peers: Vec<NodeId>,
    /// The envelope size limit.
    pub envelope_bytes_max: usize,
}

impl Receiver {
    /// Decode and check one inbound envelope. The version is checked on the first two bytes
    /// before anything else, so a future format is reported as such rather than as garbage.
    pub fn open_envelope(&self, bytes: &[u8]) -> Result<Envelope, DropReason> {
        if bytes.len() > self.envelope_bytes_max {
            return Err(DropReason::Oversize);
        }
        match bytes.get(..2) {
            None => return Err(DropReason::Truncated),
            Some(v) if u16::from_le_bytes([v[0], v[1]]) != WIRE_VERSION => return Err(DropReason::WrongVersion),
            Some(_) => {}
        }
        let envelope: Envelope = decode(bytes, self.envelope_bytes_max).map_err(|e| match e {
            DecodeError::Oversize => DropReason::Oversize,
            DecodeError::Truncated => DropReason::Truncated,
            DecodeError::Garbage => DropReason::Garbage,
        })?;
        if envelope.cluster_id != self.cluster_id {
            return Err(DropReason::WrongCluster);
        }
        if envelope.to != self.me {
            return Err(DropReason::WrongReceiver);
        }
        if !self.peers.contains(&envelope.from) {
            return Err(DropReason::UnknownSender);
        }
        Ok(envelope)
    }
}
