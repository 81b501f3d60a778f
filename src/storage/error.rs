//! The one error type of the storage layer.
//!
//! Every variant names the file or directory involved, so that an operator can act on the
//! message alone ("which disk? which file? which byte?").

use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a storage operation failed.
///
/// All of these are operating errors (a value, not a panic), but none is retried: the node
/// runtime stops the server on any of them. A failed fsync in particular must never be
/// retried, because the kernel may already have dropped the dirty pages and a second fsync
/// can then report success for data that never reached the disk (fail-stop, DESIGN.md
/// "Storage").
#[derive(Debug)]
pub enum StorageError {
    /// Another [`DiskStorage`](super::DiskStorage) holds the exclusive lock on this data
    /// directory: two servers writing one directory would break every durability promise.
    Locked {
        /// The data directory that is in use.
        dir: PathBuf,
    },
    /// An operating-system call failed.
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// What was being done, as one word or two: "open", "fsync", "rename", ….
        op: &'static str,
        /// The error the operating system reported.
        source: io::Error,
    },
    /// A file exists but its content is not a valid record. The server refuses to start
    /// rather than guess: a wrong term or vote could let it vote twice in one term
    /// (Raft Figure 2, "Persistent state on all servers").
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset, from the start of the file, of the first field found to be wrong.
        offset: u64,
        /// What is wrong there.
        detail: String,
    },
    /// A log segment is intact but in another WAL format version than this build reads (for
    /// example version 1, written before the checksum covered the record length). Refused
    /// rather than converted: the old format cannot tell a torn tail from damage reliably.
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version its header names.
        found: u8,
        /// The only version this build reads.
        supported: u8,
    },
    /// The newest snapshot file is damaged. The server refuses to start rather than fall back
    /// to an older snapshot: the log entries after the older one may already have been
    /// discarded by compaction (§7), and starting from it would silently lose committed
    /// entries. No file is removed.
    SnapshotRefused {
        /// The damaged newest snapshot.
        path: PathBuf,
        /// Byte offset, from the start of the file, of the first field found to be wrong.
        offset: u64,
        /// What is wrong there.
        detail: String,
        /// The newest older snapshot that is intact, if any: usable only if the log still
        /// holds every entry after its index.
        older: Option<PathBuf>,
    },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Locked { dir } => write!(
                f,
                "data directory {} is in use by another process (lock file {})",
                dir.display(),
                dir.join(super::LOCK_FILE).display()
            ),
            StorageError::Io { path, op, source } => {
                write!(f, "{op} {}: {source}", path.display())
            }
            StorageError::Corrupt { path, offset, detail } => {
                write!(f, "corrupt {} at byte {offset}: {detail}", path.display())
            }
            StorageError::UnsupportedVersion { path, found, supported } => {
                let wal_dir = path.parent().unwrap_or(path);
                write!(
                    f,
                    "{} is in WAL format version {found}, but this build reads only WAL format {supported}. \
                     Either start the build that wrote it on this data directory, or, once the other servers \
                     are up with a leader, remove {} (keep the hardstate file: it holds this server's term and \
                     vote) and restart: the server rejoins with an empty log and the leader re-replicates it \
                     (docs/storage.md, \"Older formats\")",
                    path.display(),
                    wal_dir.display()
                )
            }
            StorageError::SnapshotRefused { path, offset, detail, older } => {
                write!(
                    f,
                    "corrupt snapshot {} at byte {offset}: {detail}. It is the newest snapshot; the server does not \
                     fall back to an older one on its own, because the log entries after an older snapshot may \
                     already be compacted away, and starting from it would lose committed entries. ",
                    path.display()
                )?;
                if let Some(older) = older {
                    write!(
                        f,
                        "The newest intact older snapshot is {}: if the log still holds every entry after the index \
                         in its name, removing {} lets the server start from it; otherwise ",
                        older.display(),
                        path.display()
                    )?;
                }
                write!(f, "restore the data directory from a healthy replica (docs/storage.md, \"Snapshots\")")
            }
        }
    }
}

impl Error for StorageError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            StorageError::Locked { .. }
            | StorageError::Corrupt { .. }
            | StorageError::UnsupportedVersion { .. }
            | StorageError::SnapshotRefused { .. } => None,
        }
    }
}

/// Shorthand used by the storage code: wrap an `io::Error` with the path and operation.
pub(super) fn io_error(path: impl Into<PathBuf>, op: &'static str) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.into();
    move |source| StorageError::Io { path, op, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_the_problem() {
        let locked = StorageError::Locked { dir: PathBuf::from("/x") };
        assert_eq!(locked.to_string(), "data directory /x is in use by another process (lock file /x/LOCK)");

        let io = StorageError::Io {
            path: PathBuf::from("/x/hardstate"),
            op: "fsync",
            source: io::Error::other("disk on fire"),
        };
        assert_eq!(io.to_string(), "fsync /x/hardstate: disk on fire");
        assert_eq!(io.source().unwrap().to_string(), "disk on fire");

        let corrupt = StorageError::Corrupt {
            path: PathBuf::from("/x/hardstate"),
            offset: 30,
            detail: "checksum mismatch".to_string(),
        };
        assert_eq!(corrupt.to_string(), "corrupt /x/hardstate at byte 30: checksum mismatch");
        assert!(corrupt.source().is_none());
    }
}
