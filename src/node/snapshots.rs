//! Snapshot images of a running server, on the loop's side: serving chunks of the latest image
//! to followers, writing received chunks into the incoming image, and taking snapshots on a
//! thread of their own.
//!
//! With a data directory (the normal case) images are files in `<data dir>/snap/`: chunks are
//! read with positioned reads from the file (kept open while it is served, so a newer snapshot
//! replacing it does not cut a transfer short), received chunks are written to
//! `snap/incoming.part` without fsync (the writer thread syncs, checks and renames it at
//! install), and a snapshot being taken is written and synced as `snap/<name>.tmp` by its
//! thread — serializing a large state and its fsync take long, and neither may stall the loop
//! or the WAL's writer. With a storage that has no directory (an in-memory one in tests),
//! images are kept in memory instead.

use crate::core::{LogIndex, SnapshotChunk, Term};
use crate::kv::SnapshotJob;
use crate::storage::{
    decode_snapshot_image, encode_snapshot_image, incoming_snapshot_path, snapshot_file_name, write_snapshot_tmp,
    Snapshot, SnapshotMeta, SnapshotSource, StorageError,
};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

/// A snapshot's (last index, last term): names an image.
type Key = (LogIndex, Term);

/// A snapshot taken: its meta, its image's size and where the image is.
pub(super) struct Taken {
    pub meta: SnapshotMeta,
    pub image_len: u64,
    source: SnapshotSource,
}

/// The image being served to followers.
enum Serving {
    File(File),
    Memory(Arc<Vec<u8>>),
}

/// The loop's snapshot files (see the module docs).
pub(super) struct SnapshotFiles {
    pid: u64,
    /// `<data dir>/snap`, or `None` for images in memory.
    dir: Option<PathBuf>,
    /// The image served to followers, by (index, term).
    serving: Option<(Key, Serving)>,
    /// Memory mode: the latest image (taken or installed).
    latest: Option<(Key, Arc<Vec<u8>>)>,
    /// The incoming image: its file (directory mode) or bytes (memory mode).
    incoming_file: Option<File>,
    incoming: Vec<u8>,
    /// Snapshots taken, waiting to be handed to the writer, oldest first.
    staged: VecDeque<SnapshotSource>,
    /// Completions of the snapshot thread.
    done: mpsc::Receiver<Result<Taken, StorageError>>,
    done_tx: mpsc::Sender<Result<Taken, StorageError>>,
}

impl SnapshotFiles {
    pub(super) fn new(pid: u64, dir: Option<PathBuf>) -> SnapshotFiles {
        let (done_tx, done) = mpsc::channel();
        SnapshotFiles {
            pid,
            dir,
            serving: None,
            latest: None,
            incoming_file: None,
            incoming: Vec::new(),
            staged: VecDeque::new(),
            done,
            done_tx,
        }
    }

    /// Memory mode: the image restored at start, so that it can be served.
    pub(super) fn loaded(&mut self, snapshot: &Snapshot) {
        if self.dir.is_none() {
            let key = (snapshot.meta.last_index, snapshot.meta.last_term);
            self.latest = Some((key, Arc::new(encode_snapshot_image(&snapshot.meta, &snapshot.data))));
        }
    }

    /// Bytes `offset..offset + len` of the image (`index`, `term`); `None` when it is gone.
    pub(super) fn read(&mut self, index: LogIndex, term: Term, offset: u64, len: usize) -> Option<Vec<u8>> {
        let key = (index, term);
        if self.serving.as_ref().is_none_or(|(k, _)| *k != key) {
            let serving = match &self.dir {
                Some(dir) => Serving::File(File::open(dir.join(snapshot_file_name(index, term))).ok()?),
                None => Serving::Memory(self.latest.as_ref().filter(|(k, _)| *k == key)?.1.clone()),
            };
            self.serving = Some((key, serving));
        }
        let (_, serving) = self.serving.as_ref().expect("set above");
        match serving {
            Serving::File(file) => {
                let mut buf = vec![0; len];
                file.read_exact_at(&mut buf, offset).ok()?;
                Some(buf)
            }
            Serving::Memory(image) => image.get(offset as usize..offset as usize + len).map(<[u8]>::to_vec),
        }
    }

    /// Write a received chunk into the incoming image (offset 0 starts a new one). A failed
    /// write only loses the transfer: the image is checked completely before it is installed.
    pub(super) fn receive(&mut self, chunk: &SnapshotChunk) {
        let Some(dir) = &self.dir else {
            self.incoming.truncate(chunk.offset as usize);
            self.incoming.extend_from_slice(&chunk.data);
            return;
        };
        if chunk.offset == 0 {
            let path = incoming_snapshot_path(dir);
            let opened = OpenOptions::new().create(true).write(true).read(true).truncate(true).open(&path);
            match opened {
                Ok(file) => self.incoming_file = Some(file),
                Err(e) => log::warn!("server {}: cannot create {}: {e}", self.pid, path.display()),
            }
        }
        if let Some(file) = &self.incoming_file {
            if let Err(e) = file.write_all_at(&chunk.data, chunk.offset) {
                log::warn!("server {}: writing a received snapshot chunk failed: {e}", self.pid);
                self.incoming_file = None;
            }
        }
    }

    /// The incoming image, read back and checked completely.
    pub(super) fn received(&mut self) -> Result<Snapshot, String> {
        let Some(dir) = &self.dir else {
            let snapshot = decode_snapshot_image(&self.incoming)?;
            // Served from now on, should this server lead (the core asks only once installed).
            let key = (snapshot.meta.last_index, snapshot.meta.last_term);
            self.latest = Some((key, Arc::new(self.incoming.clone())));
            return Ok(snapshot);
        };
        let path = incoming_snapshot_path(dir);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        decode_snapshot_image(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Where the writer finds the received image to install.
    pub(super) fn received_source(&mut self) -> SnapshotSource {
        match &self.dir {
            Some(dir) => {
                self.incoming_file = None;
                SnapshotSource::File { path: incoming_snapshot_path(dir), synced: false }
            }
            None => SnapshotSource::Image(std::mem::take(&mut self.incoming)),
        }
    }

    /// Where the writer finds the image of the oldest snapshot taken and not yet written.
    pub(super) fn taken_source(&mut self) -> SnapshotSource {
        self.staged.pop_front().expect("a snapshot write follows its taking")
    }

    /// Run `job` and write its image on a thread of its own; [`SnapshotFiles::completions`]
    /// returns it. (The loop looks at least once a tick: no wake-up needed for something this
    /// rare and this slow.)
    pub(super) fn take(&mut self, meta: SnapshotMeta, job: SnapshotJob) {
        let (dir, done, pid) = (self.dir.clone(), self.done_tx.clone(), self.pid);
        std::thread::Builder::new()
            .name(format!("leader-{pid}-snapshot"))
            .spawn(move || {
                let started = std::time::Instant::now();
                let data = job();
                let serialized = started.elapsed();
                let image_len = crate::driver::image_len(&meta, data.len());
                let result = match dir {
                    Some(dir) => write_snapshot_tmp(&dir, &meta, &data).map(|path| Taken {
                        meta,
                        image_len,
                        source: SnapshotSource::File { path, synced: true },
                    }),
                    None => {
                        let image = encode_snapshot_image(&meta, &data);
                        Ok(Taken { meta, image_len, source: SnapshotSource::Image(image) })
                    }
                };
                log::info!(
                    "server {pid}: snapshot of {} bytes serialized in {} ms, written in {} ms",
                    image_len,
                    serialized.as_millis(),
                    (started.elapsed() - serialized).as_millis()
                );
                let _ = done.send(result);
            })
            .expect("spawn the snapshot thread");
    }

    /// Snapshots the thread finished (a failed write is fatal: fail-stop).
    pub(super) fn completions(&mut self) -> Result<Vec<(SnapshotMeta, u64)>, StorageError> {
        let mut out = Vec::new();
        while let Ok(result) = self.done.try_recv() {
            let Taken { meta, image_len, source } = result?;
            if let (None, SnapshotSource::Image(image)) = (&self.dir, &source) {
                self.latest = Some(((meta.last_index, meta.last_term), Arc::new(image.clone())));
            }
            self.staged.push_back(source);
            out.push((meta, image_len));
        }
        Ok(out)
    }
}
