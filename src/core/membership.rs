//! Cluster membership (thesis §4): who votes, who only learns, and where each server listens.
//!
//! The membership lives in the log: a *membership entry* is an entry whose data is
//! [`MEMBERSHIP_MAGIC`] followed by the encoded [`Membership`] (layout in docs/wire.md §4,
//! "Membership entries"). A server uses the latest membership in its log, committed or not
//! (§4.1), and the one recorded in its snapshot when its log holds none; config.json only
//! bootstraps it. Changes are single-server (§4.1): one server added, promoted or removed per
//! entry, one change in flight at a time, so any two majorities of consecutive memberships
//! overlap. Learners receive the log but never vote and never count towards commit.
//!
//! The encoding is written by hand in bincode's fixed-width little-endian layout (the core uses
//! no encoding crate), so a peer in another language decodes it like every other message.

use super::types::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The first bytes of a membership entry's data: `ff` then `leaderm`. A client command that
/// starts with them is refused, so a command can never be taken for a membership change.
pub const MEMBERSHIP_MAGIC: [u8; 8] = *b"\xffleaderm";

/// Version of the membership encoding (the byte after the magic).
pub const MEMBERSHIP_VERSION: u8 = 1;

/// Most members a membership may list: every member is a PUSH socket on every server.
pub const MEMBERS_MAX: usize = 255;

/// Longest peer or client url of a member, in bytes.
pub const MEMBER_URL_BYTES_MAX: usize = 1024;

/// What a member does. (On the client wire too: variants are only ever appended.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberRole {
    /// Votes and counts towards commit and elections.
    Voter,
    /// Receives the log but never votes nor counts towards commit (thesis §4.2.1); with
    /// `promote`, the leader makes it a voter once it has caught up.
    Learner {
        /// Promote automatically once within the configured lag of the leader's log.
        promote: bool,
    },
}

/// One member: its role and where it listens (opaque to the core; the runtime connects there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Voter or learner.
    pub role: MemberRole,
    /// Where its peers send envelopes (its PULL socket).
    pub peer_url: String,
    /// Where clients reach it.
    pub client_url: String,
}

/// The members of the cluster, by pid.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Membership {
    /// Every member, voters and learners.
    pub members: BTreeMap<NodeId, Member>,
}

/// One change (thesis §4.1: one server at a time). On the client wire (`ChangeMembership`):
/// variants are only ever appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add `pid` as a learner at these urls; with `promote`, the leader promotes it once it has
    /// caught up.
    AddLearner {
        /// The new server.
        pid: NodeId,
        /// Its peer url.
        peer_url: String,
        /// Its client url.
        client_url: String,
        /// Promote it automatically once caught up.
        promote: bool,
    },
    /// Make learner `pid` a voter.
    Promote {
        /// The learner.
        pid: NodeId,
    },
    /// Remove `pid` (voter or learner).
    Remove {
        /// The member.
        pid: NodeId,
    },
}

/// Why a membership entry's data does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipDecodeError {
    /// It ends before the encoding does (or has bytes after it).
    Truncated,
    /// A version this build does not know.
    Version(u8),
    /// Too many members, a url too long or not UTF-8, an unknown role, pids not strictly
    /// ascending or 0, or no voter at all.
    Invalid,
}

impl Membership {
    /// A membership of these voters (no urls: the runtime knows them from config.json).
    pub fn of_voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        let voter = || Member { role: MemberRole::Voter, peer_url: String::new(), client_url: String::new() };
        Membership { members: voters.into_iter().map(|v| (v, voter())).collect() }
    }

    /// Whether `pid` is a voter.
    pub fn is_voter(&self, pid: NodeId) -> bool {
        self.members.get(&pid).is_some_and(|m| m.role == MemberRole::Voter)
    }

    /// Whether `pid` is a member (voter or learner).
    pub fn contains(&self, pid: NodeId) -> bool {
        self.members.contains_key(&pid)
    }

    /// The voters, in pid order.
    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().filter(|(_, m)| m.role == MemberRole::Voter).map(|(p, _)| *p)
    }

    /// The learners, in pid order.
    pub fn learners(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().filter(|(_, m)| m.role != MemberRole::Voter).map(|(p, _)| *p)
    }

    /// Votes (or acknowledgements) needed: a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters().count() / 2 + 1
    }

    /// The membership after `change`, or why it cannot be made (not considering liveness or
    /// what is in flight: see `Raft::propose_membership`).
    pub fn after(&self, change: &MembershipChange) -> Result<Membership, super::MembershipError> {
        use super::MembershipError as E;
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner { pid, peer_url, client_url, promote } => {
                if pid.0 == 0 {
                    return Err(E::Invalid("pid 0 is not a server".into()));
                }
                if self.contains(*pid) {
                    return Err(E::AlreadyMember(*pid));
                }
                if self.members.len() >= MEMBERS_MAX {
                    return Err(E::Invalid(format!("a membership holds at most {MEMBERS_MAX} members")));
                }
                for url in [peer_url, client_url] {
                    if url.len() > MEMBER_URL_BYTES_MAX {
                        return Err(E::Invalid(format!("a url is at most {MEMBER_URL_BYTES_MAX} bytes")));
                    }
                }
                let role = MemberRole::Learner { promote: *promote };
                next.members.insert(*pid, Member { role, peer_url: peer_url.clone(), client_url: client_url.clone() });
            }
            MembershipChange::Promote { pid } => match next.members.get_mut(pid) {
                Some(m) if m.role != MemberRole::Voter => m.role = MemberRole::Voter,
                Some(_) => return Err(E::AlreadyVoter(*pid)),
                None => return Err(E::NotAMember(*pid)),
            },
            MembershipChange::Remove { pid } => {
                if next.members.remove(pid).is_none() {
                    return Err(E::NotAMember(*pid));
                }
                if next.voters().next().is_none() {
                    return Err(E::LastVoter(*pid));
                }
            }
        }
        Ok(next)
    }

    /// The data of a membership entry holding this membership.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MEMBERSHIP_MAGIC.to_vec();
        out.push(MEMBERSHIP_VERSION);
        out.extend_from_slice(&(self.members.len() as u64).to_le_bytes());
        for (pid, m) in &self.members {
            out.extend_from_slice(&pid.0.to_le_bytes());
            let (role, promote) = match m.role {
                MemberRole::Voter => (0u32, false),
                MemberRole::Learner { promote } => (1u32, promote),
            };
            out.extend_from_slice(&role.to_le_bytes());
            out.push(u8::from(promote));
            for url in [&m.peer_url, &m.client_url] {
                out.extend_from_slice(&(url.len() as u64).to_le_bytes());
                out.extend_from_slice(url.as_bytes());
            }
        }
        out
    }

    /// The membership in an entry's `data`: `None` when it is not a membership entry (no
    /// magic), else the decoded membership or why it is invalid.
    pub fn decode(data: &[u8]) -> Option<Result<Membership, MembershipDecodeError>> {
        let rest = data.strip_prefix(&MEMBERSHIP_MAGIC)?;
        Some(decode_body(rest))
    }
}

/// Reads fixed-width little-endian fields, never past the end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], MembershipDecodeError> {
        if self.0.len() < n {
            return Err(MembershipDecodeError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, MembershipDecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn u32(&mut self) -> Result<u32, MembershipDecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn url(&mut self) -> Result<String, MembershipDecodeError> {
        let len = self.u64()?;
        if len > MEMBER_URL_BYTES_MAX as u64 {
            return Err(MembershipDecodeError::Invalid);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| MembershipDecodeError::Invalid)
    }
}

fn decode_body(data: &[u8]) -> Result<Membership, MembershipDecodeError> {
    let mut r = Reader(data);
    let version = r.take(1)?[0];
    if version != MEMBERSHIP_VERSION {
        return Err(MembershipDecodeError::Version(version));
    }
    let count = r.u64()?;
    if count > MEMBERS_MAX as u64 {
        return Err(MembershipDecodeError::Invalid);
    }
    let mut members = BTreeMap::new();
    let mut last = 0u64;
    for _ in 0..count {
        let pid = r.u64()?;
        if pid <= last {
            return Err(MembershipDecodeError::Invalid); // 0, or not strictly ascending
        }
        last = pid;
        let role = match (r.u32()?, r.take(1)?[0]) {
            (0, 0) => MemberRole::Voter,
            (1, promote @ (0 | 1)) => MemberRole::Learner { promote: promote == 1 },
            _ => return Err(MembershipDecodeError::Invalid),
        };
        let (peer_url, client_url) = (r.url()?, r.url()?);
        members.insert(NodeId(pid), Member { role, peer_url, client_url });
    }
    if !r.0.is_empty() {
        return Err(MembershipDecodeError::Truncated);
    }
    let membership = Membership { members };
    if membership.voters().next().is_none() {
        return Err(MembershipDecodeError::Invalid);
    }
    Ok(membership)
}
