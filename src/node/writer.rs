//! The disk on its own thread. The loop thread hands each Ready's write here and goes on
//! receiving, ticking and heartbeating while the fsync runs; completions come back over a
//! channel (with a wake-up of the loop's `zmq::poll`) and the driver releases what waited for
//! them. Segment creation, preallocation and deletion happen inside the WAL, so on this
//! thread too: none of it blocks the loop.
//!
//! Group commit across Readies: every write that queued up while an fsync was running goes
//! into the next one (one fsync for all, up to [`WRITE_BATCH_MAX`]). The order within a batch
//! is the storage contract's: each write's truncation and appends in turn, one sync, then the
//! newest hard state (term and vote only move forward, so saving the newest of a batch is
//! what saving each in turn would leave — and the log it refers to is already synced).
//! A failed write or sync is fatal: the thread reports it and stops (fail-stop, never a
//! retried fsync).

use super::TransportError;
use crate::driver::WriteRequest;
use crate::storage::{SnapshotSource, Storage, StorageError};
use crate::transport::zmq_transport::context;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Writes per fsync at most: bounds how long the first write of a batch waits for its sync
/// and the completions handed back at once. Far above what a turn produces (a few).
pub const WRITE_BATCH_MAX: usize = 256;

/// A write batch slower than this is logged (a slow or overloaded disk explains stalls).
const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(100);

/// A batch of writes finished: how many (in submission order), or the fatal error.
pub(super) type Completion = Result<usize, StorageError>;

/// A write with, when it makes a snapshot durable, where that snapshot's image is.
pub(super) struct Write {
    pub request: WriteRequest,
    pub snapshot: Option<SnapshotSource>,
}

/// The handle the loop keeps: submit writes, collect completions.
pub(super) struct Writer {
    requests: Option<mpsc::Sender<Write>>,
    completions: mpsc::Receiver<Completion>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Start the writer thread of server `pid` owning `storage`; it wakes the loop through the
    /// inproc `wake_endpoint` of `ctx` after each batch, and records each sync's duration in
    /// `fsync_seconds` (the metrics' histogram: its lock is never held by the loop thread).
    pub(super) fn spawn(
        pid: u64,
        mut storage: Box<dyn Storage + Send>,
        ctx: &zmq::Context,
        wake_endpoint: &str,
        fsync_seconds: Histogram,
    ) -> Result<Writer, TransportError> {
        let wake = context(ctx.socket(zmq::PUSH), || "create the writer's wake socket".into())?;
        context(wake.set_linger(0), || "configure the writer's wake socket".into())?;
        context(wake.connect(wake_endpoint), || format!("connect {wake_endpoint}"))?;
        let (requests, inbox) = mpsc::channel::<Write>();
        let (done, completions) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("leader-{pid}-writer"))
            .spawn(move || {
                while let Some(batch) = next_batch(&inbox) {
                    let started = std::time::Instant::now();
                    let writes = batch.len();
                    let result = write_batch(storage.as_mut(), batch, &fsync_seconds).map(|()| writes);
                    let took = started.elapsed();
                    if took >= SLOW_WRITE {
                        log::warn!("server {pid}: slow disk: {writes} writes took {} ms", took.as_millis());
                    }
                    let failed = result.is_err();
                    // The loop may be gone (stopping): then nobody needs the answer.
                    let _ = done.send(result);
                    let _ = wake.send(&b""[..], zmq::DONTWAIT);
                    if failed {
                        return; // fail-stop: no write after a failed one
                    }
                }
            })
            .expect("spawn the writer thread");
        Ok(Writer { requests: Some(requests), completions, thread: Some(thread) })
    }

    /// Queue a write (completed in order with every other).
    pub(super) fn submit(&self, request: Write) {
        if let Some(requests) = &self.requests {
            // A send fails only when the thread stopped after a failed write; that failure is
            // already waiting in `completions` and stops the server.
            let _ = requests.send(request);
        }
    }

    /// Every completion that has arrived, oldest first.
    pub(super) fn completions(&self) -> Vec<Completion> {
        self.completions.try_iter().collect()
    }
}

impl Drop for Writer {
    /// Stop the thread after the writes already queued (a clean stop leaves nothing unsaved
    /// that was handed to the disk).
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Block for the next write, then take every one queued behind it (group commit).
fn next_batch(inbox: &mpsc::Receiver<Write>) -> Option<Vec<Write>> {
    let first = inbox.recv().ok()?;
    let mut batch = vec![first];
    while batch.len() < WRITE_BATCH_MAX {
        match inbox.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
    Some(batch)
}

fn write_batch(storage: &mut dyn Storage, batch: Vec<Write>, fsync_seconds: &Histogram) -> Result<(), StorageError> {
    let sync = batch.iter().any(|w| w.request.sync);
    let hard_state = batch.iter().rev().find_map(|w| w.request.hard_state);
    let compact_to = batch.iter().rev().find_map(|w| w.request.compact_to);
    for Write { request, snapshot } in batch {
        if let (Some(write), Some(source)) = (&request.snapshot, snapshot) {
            // First: the snapshot is durable before the log it replaces is discarded (§7).
            storage.install_snapshot(&write.meta, source, write.retain_log)?;
        }
        if let Some(from) = request.truncate_from {
            storage.truncate_from(from)?;
        }
        if !request.entries.is_empty() {
            storage.append(&request.entries)?;
        }
    }
    if sync {
        let started = std::time::Instant::now();
        storage.sync()?;
        fsync_seconds.observe(started.elapsed().as_secs_f64());
    }
    if let Some(hard_state) = hard_state {
        storage.save_hard_state(&hard_state)?;
    }
    // Last: segments a durable snapshot covers are deleted (only whole ones, never the last).
    if let Some(upto) = compact_to {
        storage.compact(upto)?;
    }
    Ok(())
}
