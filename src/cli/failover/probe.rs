//! The write that measures "time to the first acknowledged write" in `leader failover`: started
//! the moment the leader is signalled, sent to every other server at once and re-sent to each
//! one 2 ms after it refuses (`NotLeader`, `Dropped`, …), until one acknowledges it. Every copy
//! carries the same client id and sequence number, so the store applies it once. Polling every
//! server (instead of following redirects as `Client` does) keeps the measurement's own delay
//! to about 2 ms against the 10–400 ms being measured.

use leader::codec::{decode, encode};
use leader::config::Config;
use leader::core::NodeId;
use leader::kv::{KvCommand, KvOp};
use leader::transport::auth::{self, ClusterKey};
use leader::transport::client_wire::{ClientRequest, ClientResponse, Request, Response, CLIENT_WIRE_VERSION};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Re-send to a server this long after it refused.
const RETRY_AFTER: Duration = Duration::from_millis(2);
/// Re-send to a server that has not answered for this long (it may have just died).
const RESEND_AFTER: Duration = Duration::from_millis(100);

/// One DEALER socket per server and the probe's session.
pub struct Probe {
    config: Config,
    key: Option<ClusterKey>,
    sockets: HashMap<NodeId, zmq::Socket>,
    client_id: u64,
    seq: u64,
    next_request_id: u64,
}

impl Probe {
    pub fn new(config: &Config) -> Result<Probe, String> {
        let (key, sockets) = crate::cli::bench::load::dealers(config, false)?;
        let client_id = rand::random::<u64>() | 1;
        Ok(Probe { config: config.clone(), key, sockets, client_id, seq: 0, next_request_id: 1 })
    }

    /// Write once to any server but `exclude`, retrying until acknowledged or `deadline`:
    /// when it was acknowledged.
    pub fn write(&mut self, exclude: Option<NodeId>, deadline: Instant) -> Option<Instant> {
        self.seq += 1;
        let op = KvOp::Put { key: b"failover-probe".to_vec(), value: self.seq.to_le_bytes().to_vec() };
        let command = encode(&KvCommand { client_id: self.client_id, seq: self.seq, op });
        let targets: Vec<NodeId> = self.config.pids().into_iter().filter(|p| Some(*p) != exclude).collect();
        // Per target: the request in flight and when it left, or when to send next.
        let mut in_flight: HashMap<NodeId, (u64, Instant)> = HashMap::new();
        let mut send_at: HashMap<NodeId, Instant> = targets.iter().map(|&p| (p, Instant::now())).collect();
        while Instant::now() < deadline {
            let now = Instant::now();
            for &pid in &targets {
                let stale = in_flight.get(&pid).is_some_and(|(_, sent)| now - *sent > RESEND_AFTER);
                if stale || (!in_flight.contains_key(&pid) && send_at[&pid] <= now) {
                    let request_id = self.send(pid, command.clone());
                    in_flight.insert(pid, (request_id, now));
                }
            }
            let mut items: Vec<zmq::PollItem> =
                targets.iter().map(|p| self.sockets[p].as_poll_item(zmq::POLLIN)).collect();
            let _ = zmq::poll(&mut items, 1);
            let readable: Vec<bool> = items.iter().map(|i| i.is_readable()).collect();
            for (&pid, readable) in targets.iter().zip(readable) {
                if !readable {
                    continue;
                }
                while let Ok(frames) = self.sockets[&pid].recv_multipart(zmq::DONTWAIT) {
                    let Some(response) = self.open(&frames) else { continue };
                    if in_flight.get(&pid).map(|(id, _)| *id) != Some(response.request_id) {
                        continue; // an answer to an earlier copy
                    }
                    match response.body {
                        Response::Applied { .. } => return Some(Instant::now()),
                        _ => {
                            in_flight.remove(&pid);
                            send_at.insert(pid, Instant::now() + RETRY_AFTER);
                        }
                    }
                }
            }
        }
        None
    }

    fn send(&mut self, pid: NodeId, command: Vec<u8>) -> u64 {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let request = ClientRequest {
            version: CLIENT_WIRE_VERSION,
            cluster_id: self.config.cluster_id,
            request_id,
            body: Request::Propose { command },
        };
        let frame = auth::seal(self.key.as_ref(), encode(&request));
        // A failed send is re-sent after RESEND_AFTER like a lost one.
        let _ = self.sockets[&pid].send_multipart([&b""[..], &frame], zmq::DONTWAIT);
        request_id
    }

    fn open(&self, frames: &[Vec<u8>]) -> Option<ClientResponse> {
        let body = auth::open(self.key.as_ref(), frames.last()?)?;
        decode::<ClientResponse>(body, 1 << 20).ok()
    }
}
