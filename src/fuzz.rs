//! An in-tree fuzzer that needs no nightly toolchain: mutation-based random testing of the
//! three places that read untrusted bytes — the peer envelope decoder, the client request
//! decoder, and storage recovery (the WAL and hard-state files) — and a structure-aware
//! target for what a decodable message can do to the core ([`Target::Core`], core.rs). Seeded inputs are valid
//! encodings; mutations flip bits, overwrite, insert, delete, splice, truncate and inflate
//! length fields. A panic is a finding (the harness catches it and reports the input); a hang
//! is caught by the caller's watchdog. `leader fuzz` runs it by hand; a test runs it in CI for
//! a bounded time.

use crate::codec::{decode, encode};
use crate::core::{AppendEntries, Entry, HardState, LogIndex, Message, NodeId, RequestVote, SplitMix64, Term};
use crate::kv::{KvCommand, KvOp};
use crate::storage::{DiskStorage, Storage, WalOptions};
use crate::transport::client_wire::{ClientRequest, Request, CLIENT_REQUEST_BYTES_MAX};
use crate::transport::{AppMessage, Body, Envelope, Receiver, ENVELOPE_BYTES_MAX, WIRE_VERSION};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod core;

/// What to fuzz.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `Receiver::open_envelope` on arbitrary frames.
    Envelope,
    /// Client request decoding (and the KV command inside a proposal).
    ClientRequest,
    /// Opening a data directory whose WAL segment and hard-state files are arbitrary bytes.
    Storage,
    /// Decodable Raft messages with adversarial fields, fed to a core in every role.
    Core,
}

impl Target {
    /// All targets.
    pub const ALL: [Target; 4] = [Target::Envelope, Target::ClientRequest, Target::Storage, Target::Core];

    /// The target's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Envelope => "envelope",
            Target::ClientRequest => "client-request",
            Target::Storage => "storage",
            Target::Core => "core",
        }
    }
}

/// The outcome of a fuzzing run.
#[derive(Clone, Debug)]
pub struct FuzzReport {
    /// The target.
    pub target: Target,
    /// Inputs tried.
    pub executions: u64,
    /// Inputs the code under test accepted (decoded, opened, or — for the core — messages
    /// it did not drop as invalid or foreign).
    pub accepted: u64,
    /// The first input that panicked (or, for the core, broke a check), and why. The core
    /// target's input is empty: the message names the scenario seed and step instead.
    pub crash: Option<(Vec<u8>, String)>,
}

/// Mutate `input` a few times.
pub fn mutate(rng: &mut SplitMix64, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.range(1, 5) {
        let len = out.len() as u64;
        match rng.range(0, 8) {
            0 if len > 0 => {
                let i = rng.range(0, len) as usize;
                out[i] ^= 1 << rng.range(0, 8);
            }
            1 if len > 0 => {
                let i = rng.range(0, len) as usize;
                out[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.range(0, len + 1) as usize;
                out.insert(i, rng.next_u64() as u8);
            }
            3 if len > 0 => {
                let i = rng.range(0, len) as usize;
                out.remove(i);
            }
            4 => out.truncate(rng.range(0, len + 1) as usize),
            5 if len >= 8 => {
                // Inflate a length-looking field.
                let i = rng.range(0, len - 7) as usize;
                out[i..i + 8].copy_from_slice(&(u64::MAX >> rng.range(0, 56)).to_le_bytes());
            }
            6 if len > 0 => {
                // Duplicate a slice (splice).
                let (a, b) = (rng.range(0, len) as usize, rng.range(0, len) as usize);
                let (a, b) = (a.min(b), a.max(b));
                let piece = out[a..b].to_vec();
                let at = rng.range(0, out.len() as u64 + 1) as usize;
                out.splice(at..at, piece);
            }
            _ => out.extend((0..rng.range(0, 16)).map(|_| rng.next_u64() as u8)),
        }
    }
    out
}

fn corpus_envelopes() -> Vec<Vec<u8>> {
    let env = |body| encode(&Envelope { version: WIRE_VERSION, cluster_id: 9, from: NodeId(2), to: NodeId(1), body });
    vec![
        env(Body::Raft(Message::RequestVote(RequestVote {
            term: Term(3),
            candidate_id: NodeId(2),
            last_log_index: LogIndex(4),
            last_log_term: Term(2),
        }))),
        env(Body::Raft(Message::AppendEntries(AppendEntries {
            term: Term(3),
            leader_id: NodeId(2),
            prev_log_index: LogIndex(1),
            prev_log_term: Term(1),
            entries: vec![Entry { term: Term(3), index: LogIndex(2), data: b"abc".to_vec() }; 3],
            leader_commit: LogIndex(1),
        }))),
        env(Body::App(AppMessage { msg_id: 1, broadcast: false, payload: b"payload".to_vec() })),
    ]
}

fn corpus_requests() -> Vec<Vec<u8>> {
    let command = encode(&KvCommand {
        client_id: 1,
        seq: 2,
        op: KvOp::Cas { key: b"k".to_vec(), expected: Some(b"a".to_vec()), new: Some(b"b".to_vec()) },
    });
    vec![
        encode(&ClientRequest { version: 1, cluster_id: 9, request_id: 1, body: Request::Status }),
        encode(&ClientRequest { version: 1, cluster_id: 9, request_id: 2, body: Request::Propose { command } }),
    ]
}

/// A valid data directory's files (segment, hard state) to mutate.
fn corpus_storage(scratch: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = scratch.join("seed");
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut storage = DiskStorage::open_with(&dir, WalOptions { segment_bytes_max: 1 << 20 }).expect("seed dir");
        let entries: Vec<Entry> =
            (1..=6).map(|i| Entry { term: Term(1 + i / 3), index: LogIndex(i), data: vec![i as u8; 5] }).collect();
        storage.append(&entries).expect("append");
        storage.sync().expect("sync");
        storage
            .save_hard_state(&HardState {
                current_term: Term(3),
                voted_for: Some(NodeId(1)),
                commit_index: LogIndex(4),
            })
            .expect("save");
    }
    let mut files = Vec::new();
    for entry in walk(&dir) {
        let name = entry.strip_prefix(&dir).expect("inside").to_string_lossy().into_owned();
        if name != "LOCK" {
            files.push((name, std::fs::read(&entry).expect("read seed file")));
        }
    }
    files
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Run `target` for `duration` from `seed`; `progress` is bumped after every execution (for a
/// watchdog that detects hangs). `scratch` is a directory the storage target may use.
pub fn run(target: Target, seed: u64, duration: Duration, scratch: &Path, progress: &AtomicU64) -> FuzzReport {
    if target == Target::Core {
        return run_core(seed, duration, progress);
    }
    let mut rng = SplitMix64::new(seed);
    let receiver = Receiver {
        cluster_id: 9,
        me: NodeId(1),
        peers: vec![NodeId(2), NodeId(3)],
        envelope_bytes_max: ENVELOPE_BYTES_MAX,
    };
    let storage_corpus = if target == Target::Storage { corpus_storage(scratch) } else { Vec::new() };
    let corpus = match target {
        Target::Envelope => corpus_envelopes(),
        Target::ClientRequest => corpus_requests(),
        Target::Storage => storage_corpus.iter().map(|(_, b)| b.clone()).collect(),
        Target::Core => unreachable!("the core target is structure-aware"),
    };
    let mut report = FuzzReport { target, executions: 0, accepted: 0, crash: None };
    let end = Instant::now() + duration;
    let case_dir = scratch.join("case");
    while Instant::now() < end {
        let pick = rng.range(0, corpus.len() as u64) as usize;
        let input = if rng.range(0, 10) == 0 {
            (0..rng.range(0, 300)).map(|_| rng.next_u64() as u8).collect()
        } else {
            mutate(&mut rng, &corpus[pick])
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match target {
            Target::Envelope => receiver.open_envelope(&input).is_ok(),
            Target::ClientRequest => match decode::<ClientRequest>(&input, CLIENT_REQUEST_BYTES_MAX) {
                Ok(ClientRequest { body: Request::Propose { command }, .. }) => {
                    decode::<KvCommand>(&command, CLIENT_REQUEST_BYTES_MAX).is_ok()
                }
                Ok(_) => true,
                Err(_) => false,
            },
            Target::Storage => {
                // The seed directory with one file replaced by the mutated bytes.
                let _ = std::fs::remove_dir_all(&case_dir);
                for (i, (name, bytes)) in storage_corpus.iter().enumerate() {
                    let path = case_dir.join(name);
                    std::fs::create_dir_all(path.parent().expect("in dir")).expect("case dir");
                    std::fs::write(&path, if i == pick { &input } else { bytes }).expect("case file");
                }
                match DiskStorage::open(&case_dir) {
                    Ok(mut storage) => {
                        let entries = storage.take_entries();
                        // Whatever recovery accepted must be a well-formed log.
                        for (i, e) in entries.iter().enumerate() {
                            assert_eq!(e.index, LogIndex(i as u64 + 1), "recovered log has a gap");
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            Target::Core => unreachable!("the core target is structure-aware"),
        }));
        report.executions += 1;
        progress.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(true) => report.accepted += 1,
            Ok(false) => {}
            Err(panic) => {
                let text = crate::panic_text(panic.as_ref());
                report.crash = Some((input, text));
                return report;
            }
        }
    }
    report
}

fn run_core(seed: u64, duration: Duration, progress: &AtomicU64) -> FuzzReport {
    let mut report = FuzzReport { target: Target::Core, executions: 0, accepted: 0, crash: None };
    let end = Instant::now() + duration;
    let failure = core::run(
        seed,
        || Instant::now() < end,
        |step| {
            report.executions += 1;
            report.accepted += u64::from(step.accepted);
            progress.fetch_add(1, Ordering::Relaxed);
        },
    );
    report.crash = failure.map(|why| (Vec::new(), why));
    report
}
