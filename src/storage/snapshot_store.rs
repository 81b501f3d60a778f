//! The snapshot directory of one data directory (Raft §7): the latest durable snapshot, the
//! atomic save of a new one, and the install of one received or taken elsewhere. The file
//! format and images are snapshot.rs's.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::error::io_error;
use super::hard_state::{replace_durably, sync_dir};
use super::snapshot::*;
use super::{create_dir_durably, SnapshotSource, StorageError};

/// The snapshots of one directory: the latest durable one, and the atomic save of a new one.
///
/// The directory must not be shared: the caller holds the data directory's lock (a
/// [`DiskStorage`](super::DiskStorage) on its parent), because open removes temp files that a
/// live writer could be in the middle of.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    /// The latest snapshot on disk, with its path.
    latest: Option<(SnapshotMeta, PathBuf)>,
    /// The snapshot read at open, until taken or superseded by a save.
    loaded: Option<Snapshot>,
    /// Set after a failed save: every later save fails too (fail-stop, never retry an fsync).
    failed: bool,
}

impl SnapshotStore {
    /// Opens (creating if needed, durably) a snapshot directory: removes leftover temp files,
    /// reads and checks the newest snapshot completely, and removes older ones (left by a
    /// save that crashed after its rename, before its cleanup; the newest is durable).
    ///
    /// A damaged newest snapshot is refused with [`StorageError::SnapshotRefused`], naming it,
    /// the reason, and the newest valid older snapshot if there is one; no file is removed.
    /// It does not fall back to the older one: a save removes log entries only after the new
    /// snapshot is durable, so the log may no longer hold the entries that follow the older
    /// snapshot, and starting from it would silently drop committed entries (§7). Whether the
    /// log still holds them is the log's business, not this store's, so an operator decides.
    pub fn open(dir: impl AsRef<Path>) -> Result<SnapshotStore, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        create_dir_durably(&dir)?;
        let mut files = list(&dir, true)?;
        let Some((index, term, path)) = files.pop() else {
            return Ok(SnapshotStore { dir, latest: None, loaded: None, failed: false });
        };
        let snapshot = match read_named(&path, index, term) {
            Ok(snapshot) => snapshot,
            Err(StorageError::Corrupt { path, offset, detail }) => {
                let older = files.iter().rev().find(|(i, t, p)| read_named(p, *i, *t).is_ok());
                let older = older.map(|(_, _, p)| p.clone());
                return Err(StorageError::SnapshotRefused { path, offset, detail, older });
            }
            Err(err) => return Err(err),
        };
        if !files.is_empty() {
            for (_, _, old) in &files {
                fs::remove_file(old).map_err(io_error(old, "remove"))?;
                log::info!("removed {} superseded by {}", old.display(), path.display());
            }
            sync_dir(&dir)?;
        }
        let latest = Some((snapshot.meta.clone(), path));
        Ok(SnapshotStore { dir, latest, loaded: Some(snapshot), failed: false })
    }

    /// The directory, as given to [`SnapshotStore::open`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index, term and configuration of the latest durable snapshot, if any.
    pub fn latest(&self) -> Option<&SnapshotMeta> {
        self.latest.as_ref().map(|(meta, _)| meta)
    }

    /// The file of the latest durable snapshot, if any.
    pub fn latest_path(&self) -> Option<&Path> {
        self.latest.as_ref().map(|(_, path)| path.as_path())
    }

    /// The snapshot read at open (with its state machine bytes), moved out: the runtime
    /// restores it once at start. `None` once taken, after a save, or if there was none.
    pub fn take_snapshot(&mut self) -> Option<Snapshot> {
        self.loaded.take()
    }

    /// Durably saves a snapshot and then removes the older ones. The previous snapshot stays
    /// until the new one is durable (temp file, fsync, rename, directory fsync), so a crash
    /// at any point leaves at least one complete snapshot; only then are older files removed
    /// and the directory fsynced again. The caller may discard log entries up to
    /// `meta.last_index` only after this returns.
    ///
    /// An error is fatal: this and every later save fails (fail-stop).
    ///
    /// # Panics
    ///
    /// On a caller bug that would write a snapshot recovery must refuse or misuse:
    /// `last_index` or `last_term` 0, a configuration over [`SNAPSHOT_CONFIG_BYTES_MAX`], an
    /// index below the latest snapshot's, or the same index with another term (a committed
    /// entry's term never changes, §5.4).
    pub fn save(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        if self.failed {
            let source = io::Error::other("an earlier save failed; storage is fail-stop and never retries");
            return Err(StorageError::Io { path: self.dir.clone(), op: "save snapshot", source });
        }
        if let Some(latest) = self.latest() {
            assert!(
                meta.last_index > latest.last_index
                    || (meta.last_index == latest.last_index && meta.last_term == latest.last_term),
                "a snapshot never moves backwards (§7): latest ends at index {} term {}, new at index {} term {}",
                latest.last_index,
                latest.last_term,
                meta.last_index,
                meta.last_term
            );
        }
        let (header, crc) = encode_parts(meta, data);
        let name = snapshot_file_name(meta.last_index, meta.last_term);
        let tmp_name = format!("{name}.tmp");
        let path = self.dir.join(&name);
        let placed = replace_durably(&self.dir, &tmp_name, &name, &[&header, &meta.config, data, &crc]);
        self.adopt(placed, meta, path)
    }

    /// After `placed` put the snapshot `meta` durably at `path`: make it the latest and remove
    /// the older ones; any failure is fatal from now on (fail-stop).
    fn adopt(
        &mut self,
        placed: Result<(), StorageError>,
        meta: &SnapshotMeta,
        path: PathBuf,
    ) -> Result<(), StorageError> {
        let result = placed.and_then(|()| {
            self.latest = Some((meta.clone(), path.clone()));
            self.loaded = None;
            self.remove_older_than(&path)
        });
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Checks a snapshot to install (Raft §7, InstallSnapshot) before anything changes: a
    /// defect is [`StorageError::Corrupt`] naming the file (or this directory, for an image in
    /// memory), and leaves every file as it was. An image, and a file not yet synced, are
    /// checked completely (a file is fdatasynced first, so that what is checked is what is
    /// on the disk); a file that is already synced was checked by whoever wrote it
    /// ([`write_snapshot_tmp`]), so only its header is compared with `meta`.
    ///
    /// # Panics
    ///
    /// If a file is not in this store's directory: the rename that installs it must stay in
    /// one directory for the directory fsync to make it durable.
    pub(super) fn check_source(&self, meta: &SnapshotMeta, source: SnapshotSource) -> Result<Checked, StorageError> {
        match source {
            SnapshotSource::Image(image) => {
                let found = decode_image(&image).map_err(|(offset, detail)| {
                    let detail =
                        format!("snapshot image for index {} term {}: {detail}", meta.last_index, meta.last_term);
                    corrupt(&self.dir, offset, detail)
                })?;
                same_meta(meta, &found.meta).map_err(|detail| corrupt(&self.dir, OFFSET_INDEX, detail))?;
                Ok(Checked::Image(image))
            }
            SnapshotSource::File { path, synced } => {
                assert_eq!(
                    path.parent(),
                    Some(self.dir.as_path()),
                    "a snapshot file to install must be in the snapshot directory {}",
                    self.dir.display()
                );
                if synced {
                    let (index, term) = read_header(&path)?;
                    if (index, term) != (meta.last_index, meta.last_term) {
                        let detail = format!(
                            "the header says index {index} term {term}, the install asks for index {} term {}",
                            meta.last_index, meta.last_term
                        );
                        return Err(corrupt(&path, OFFSET_INDEX, detail));
                    }
                } else {
                    let file = File::open(&path).map_err(io_error(&path, "open"))?;
                    file.sync_data().map_err(io_error(&path, "fdatasync"))?;
                    drop(file);
                    let (found, _) = read_checked(&path, false)?;
                    same_meta(meta, &found).map_err(|detail| corrupt(&path, OFFSET_INDEX, detail))?;
                }
                Ok(Checked::File(path))
            }
        }
    }

    /// Makes a checked snapshot the latest durable one: an image is written like a save (temp
    /// file, fsync, rename, directory fsync), a file is renamed into place and the directory
    /// fsynced. Only then are older snapshot files removed (and the directory fsynced again),
    /// so a crash at any point leaves at least one complete snapshot. Fail-stop like
    /// [`SnapshotStore::save`].
    pub(super) fn install(&mut self, meta: &SnapshotMeta, checked: Checked) -> Result<(), StorageError> {
        if self.failed {
            let source = io::Error::other("an earlier save failed; storage is fail-stop and never retries");
            return Err(StorageError::Io { path: self.dir.clone(), op: "install snapshot", source });
        }
        let name = snapshot_file_name(meta.last_index, meta.last_term);
        let path = self.dir.join(&name);
        let placed = match checked {
            Checked::Image(image) => replace_durably(&self.dir, &format!("{name}.tmp"), &name, &[&image]),
            Checked::File(from) => {
                fs::rename(&from, &path).map_err(io_error(&path, "rename")).and_then(|()| sync_dir(&self.dir))
            }
        };
        self.adopt(placed, meta, path)
    }

    /// Removes every snapshot file but `keep`, then fsyncs the directory so that the removals
    /// cannot come back after a crash (they are harmless if they do, but the disk space is not).
    fn remove_older_than(&self, keep: &Path) -> Result<(), StorageError> {
        let mut removed = false;
        for (_, _, path) in list(&self.dir, false)? {
            if path != keep {
                fs::remove_file(&path).map_err(io_error(&path, "remove"))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}
