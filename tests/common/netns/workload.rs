//! Concurrent clients inside namespaces, recording one history for the linearizability
//! checker: invocation and completion times from one `Instant` base, the responses, and
//! `complete: None` for every operation whose outcome the client never learned.

use super::enter;
use leader::client::{Client, ReadFrom, ReadPath};
use leader::config::Config;
use leader::core::SplitMix64;
use leader::kv::{KvOp, KvResponse};
use leader::sim::linearizability::Operation;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Operations of every client, in microseconds since one base instant.
pub struct History {
    base: Instant,
    ops: Mutex<Vec<Operation>>,
}

impl History {
    /// An empty history starting now.
    pub fn new() -> Arc<History> {
        Arc::new(History { base: Instant::now(), ops: Mutex::new(Vec::new()) })
    }

    /// Microseconds since the base.
    pub fn now(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    /// Run `op` with `client` as client `id` and record it. A failed call may still have
    /// taken effect (a timed-out write can commit later), so every error is indeterminate.
    pub fn run(&self, id: u64, client: &mut Client, op: KvOp) -> Option<KvResponse> {
        let invoke = self.now();
        let response = client.execute(op.clone()).ok().map(|(_, r)| r);
        let complete = response.as_ref().map(|_| self.now());
        self.ops.lock().unwrap().push(Operation { client: id, op, invoke, complete, response: response.clone() });
        response
    }

    /// Everything recorded so far.
    pub fn operations(&self) -> Vec<Operation> {
        self.ops.lock().unwrap().clone()
    }
}

/// What a client does in a loop.
#[derive(Clone, Debug)]
pub enum Mix {
    /// Put 1, 2, 3, … (decimal) to one key, as its only writer: a later read of a smaller
    /// number than one already acknowledged is a stale read.
    Counter(Vec<u8>),
    /// Only reads of these keys.
    Reads(Vec<Vec<u8>>),
    /// Reads and puts (of values unique to this client) on these shared keys, and puts of
    /// fresh keys `u<client>-<n>` (each written once: read back to find lost writes).
    Mixed(Vec<Vec<u8>>),
}

impl Mix {
    fn next(&self, id: u64, n: u64, rng: &mut SplitMix64) -> KvOp {
        let pick = |keys: &[Vec<u8>], rng: &mut SplitMix64| keys[rng.range(0, keys.len() as u64) as usize].clone();
        match self {
            Mix::Counter(key) => KvOp::Put { key: key.clone(), value: n.to_string().into_bytes() },
            Mix::Reads(keys) => KvOp::Get { key: pick(keys, rng) },
            Mix::Mixed(keys) => match rng.range(0, 10) {
                0..=3 => KvOp::Get { key: pick(keys, rng) },
                4..=7 => KvOp::Put { key: pick(keys, rng), value: format!("w{id}-{n}").into_bytes() },
                _ => KvOp::Put { key: format!("u{id}-{n}").into_bytes(), value: format!("w{id}-{n}").into_bytes() },
            },
        }
    }
}

/// Client threads running until stopped (on drop at the latest).
pub struct Workload {
    /// The shared history.
    pub history: Arc<History>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    next_id: u64,
}

impl Workload {
    /// No clients yet.
    pub fn new(history: Arc<History>) -> Workload {
        Workload { history, stop: Arc::new(AtomicBool::new(false)), threads: Vec::new(), next_id: 1 }
    }

    /// Start a client in namespace `ns` with `config`, doing `mix`; returns its client id (as
    /// recorded in the history). Each call waits at most `deadline` (then it counts as
    /// indeterminate); calls are `pace` apart so histories stay small enough to check.
    pub fn spawn(&mut self, ns: &str, config: Config, mix: Mix, deadline: Duration, seed: u64) -> u64 {
        self.spawn_reading_from(ns, config, mix, deadline, seed, ReadFrom::Leader)
    }

    /// [`Workload::spawn`] with the client's reads (ReadIndex) sent to `from`.
    pub fn spawn_reading_from(
        &mut self,
        ns: &str,
        config: Config,
        mix: Mix,
        deadline: Duration,
        seed: u64,
        from: ReadFrom,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let (ns, history, stop) = (ns.to_string(), self.history.clone(), self.stop.clone());
        self.threads.push(std::thread::spawn(move || {
            enter(&ns);
            // Created after setns: the context's I/O threads, which connect, are in `ns` too.
            let mut client = Client::new(config)
                .with_timeout(Duration::from_millis(300).min(deadline))
                .with_operation_deadline(deadline)
                .with_reads(ReadPath::ReadIndex, from);
            let mut rng = SplitMix64::new(seed ^ id);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let ok = history.run(id, &mut client, mix.next(id, n, &mut rng)).is_some();
                // A refused call can return at once (a redirect outside the config): back off.
                std::thread::sleep(Duration::from_millis(if ok { 5 } else { 50 }));
            }
        }));
        id
    }

    /// Stop every client and wait for them (each finishes its call in flight).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            if let Err(e) = thread.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(e);
                }
            }
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop();
    }
}
