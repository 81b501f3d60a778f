//! `leader restore FILE (--pid N | --data-dir DIR)`: seed a new server's data directory from a
//! backup written by `leader backup`.

use super::snapshot::{check_image, recorded_configuration};
use super::EXIT_FAILURE;
use leader::config::Config;
use leader::core::{HardState, LogIndex, Membership};
use leader::driver::snapshot_membership;
use leader::storage::{
    encode_snapshot_image, DiskStorage, Snapshot, SnapshotMeta, SnapshotSource, Storage, HARD_STATE_FILE,
};
use std::path::Path;

/// What a data directory already holds, or None when it holds no state (a new server).
fn existing_state(storage: &DiskStorage) -> Option<String> {
    let mut held = Vec::new();
    let hard_state = storage.hard_state();
    if hard_state != HardState::default() || storage.dir().join(HARD_STATE_FILE).exists() {
        let vote = hard_state.voted_for.map_or("none".to_string(), |v| v.to_string());
        held.push(format!("a hard state (term {}, vote {vote})", hard_state.current_term));
    }
    let snapshot = storage.snapshot_meta();
    if let Some(meta) = &snapshot {
        held.push(format!("a snapshot at index {} (term {})", meta.last_index, meta.last_term));
    }
    // The log's last index is the snapshot's when no entry follows it.
    if storage.last_index() > snapshot.map_or(LogIndex(0), |m| m.last_index) {
        held.push(format!("log entries up to index {}", storage.last_index()));
    }
    (!held.is_empty()).then(|| held.join(", "))
}

/// The membership a restored snapshot records. A backup seeds a NEW cluster, whose membership
/// is its own config.json's (`initial_members`, at that file's addresses): the servers the
/// backup came from may be elsewhere, or gone. Without a config (`--data-dir`), the backup's
/// members are kept but their addresses dropped, so they are taken from whatever config.json
/// the server is started with.
pub fn new_membership(config: Option<&Config>, backup: &Membership) -> Membership {
    match config {
        Some(config) => {
            let mut m = Membership::of_voters(config.initial_members.iter().copied());
            for (pid, member) in m.members.iter_mut() {
                if let Ok(s) = config.server(*pid) {
                    (member.peer_url, member.client_url) = (s.endpoint.clone(), s.client_endpoint.clone());
                }
            }
            m
        }
        None => {
            let mut m = backup.clone();
            for member in m.members.values_mut() {
                (member.peer_url, member.client_url) = (String::new(), String::new());
            }
            m
        }
    }
}

/// Check the backup `file` completely, refuse a data directory `dir` that holds state, then
/// install the backup's snapshot as the directory's only state, recording the membership of
/// [`new_membership`].
pub fn run(file: &Path, dir: &Path, config: Option<&Config>) -> Result<(), i32> {
    let fail = |what: String| {
        eprintln!("leader: restore: {what}");
        EXIT_FAILURE
    };
    let image = std::fs::read(file).map_err(|e| fail(format!("{}: cannot read it: {e}", file.display())))?;
    let (snapshot, keys) =
        check_image(&image).map_err(|why| fail(format!("{}: not a valid backup: {why}", file.display())))?;
    let mut storage = DiskStorage::open(dir).map_err(|e| fail(format!("storage: {e}")))?;
    if let Some(held) = existing_state(&storage) {
        return Err(fail(format!(
            "data directory {} already holds {held}; restore only seeds new servers (give a new --data-dir, or remove \
             this directory if its server's state is to be replaced)",
            dir.display()
        )));
    }
    let backup =
        snapshot_membership(&snapshot.meta.config).map_err(|why| fail(format!("{}: {why}", file.display())))?;
    let meta = SnapshotMeta { config: new_membership(config, &backup).encode(), ..snapshot.meta.clone() };
    let snapshot = Snapshot { meta, data: snapshot.data };
    let image = encode_snapshot_image(&snapshot.meta, &snapshot.data);
    let bytes = image.len();
    storage
        .install_snapshot(&snapshot.meta, SnapshotSource::Image(image), false)
        .map_err(|e| fail(format!("storage: {e}")))?;
    drop(storage);
    println!(
        "restored {} into {}: snapshot at index {} (term {}), {bytes} bytes, {keys} keys (recorded configuration: {})",
        file.display(),
        dir.display(),
        snapshot.meta.last_index,
        snapshot.meta.last_term,
        recorded_configuration(&snapshot)
    );
    Ok(())
}
