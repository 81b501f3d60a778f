//! `leader snapshot` (take one now on some servers) and `leader backup` (fetch a fresh,
//! consistent snapshot image into a file). `leader restore` is in restore.rs.

use super::{EXIT_CONFIG, EXIT_FAILURE};
use leader::client::{CallError, Client};
use leader::config::Config;
use leader::core::{LogIndex, NodeId, Role, Term};
use leader::kv::{KvStore, StateMachine};
use leader::storage::{decode_snapshot_image, Snapshot};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often `backup` starts over when a newer snapshot replaces the one it is fetching.
const FETCH_ATTEMPTS: u32 = 5;
/// How long `backup` looks for a leader before giving up.
const LEADER_DEADLINE: Duration = Duration::from_secs(10);
/// Per-server timeout of the status requests `backup` uses to find the leader.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);

/// The pids a command addresses: `pid` (checked against the config: exit 2 when unknown), or
/// every server of the config.
pub fn pids_of(config: &Config, pid: Option<u64>) -> Result<Vec<NodeId>, i32> {
    match pid {
        Some(p) => match config.server(NodeId(p)) {
            Ok(_) => Ok(vec![NodeId(p)]),
            Err(e) => {
                eprintln!("leader: {e}");
                Err(EXIT_CONFIG)
            }
        },
        None => Ok(config.pids()),
    }
}

/// A server's answer to a snapshot request: its latest snapshot's index, term and size.
type SnapshotAnswer = Result<(LogIndex, Term, u64), CallError>;

/// One server's line of `leader snapshot`.
pub fn snapshot_line(pid: NodeId, answer: &SnapshotAnswer) -> String {
    match answer {
        Ok((index, term, bytes)) => format!("server {pid}: snapshot at index {index} (term {term}), {bytes} bytes"),
        Err(e) => format!("server {pid}: {e}"),
    }
}

/// `leader snapshot [--pid N]`: ask each server (all at once, one thread each) to take a
/// snapshot now; one line per server in pid order. Exit 1 when any of them took none.
pub fn run_snapshot(config: Config, pid: Option<u64>, timeout: Duration) -> Result<(), i32> {
    let pids = pids_of(&config, pid)?;
    let answers: Vec<(NodeId, SnapshotAnswer)> = std::thread::scope(|scope| {
        let handles: Vec<_> = pids
            .iter()
            .map(|&pid| {
                let config = config.clone();
                scope.spawn(move || (pid, Client::new(config).snapshot(pid, timeout)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a snapshot thread panicked")).collect()
    });
    for (pid, answer) in &answers {
        println!("{}", snapshot_line(*pid, answer));
    }
    let failed = answers.iter().filter(|(_, a)| a.is_err()).count();
    if failed > 0 {
        eprintln!(
            "leader: snapshot: {failed} of {} servers of {} took no snapshot",
            answers.len(),
            config.path.display()
        );
        return Err(EXIT_FAILURE);
    }
    Ok(())
}

/// The server that leads the highest term, asking every server's status until `deadline`.
fn find_leader(config: &Config, deadline: Duration) -> Option<NodeId> {
    let mut client = Client::new(config.clone()).with_timeout(STATUS_TIMEOUT);
    let end = Instant::now() + deadline;
    loop {
        let leader = client
            .status_all()
            .into_iter()
            .filter_map(|(_, s)| s.ok())
            .filter(|s| s.role == Role::Leader)
            .max_by_key(|s| s.term)
            .map(|s| s.pid);
        if leader.is_some() || Instant::now() >= end {
            return leader;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The cluster configuration a snapshot records (the sorted pids of its voters), as text:
/// `servers 1, 2, 3`.
pub fn recorded_configuration(snapshot: &Snapshot) -> String {
    match leader::driver::snapshot_membership(&snapshot.meta.config) {
        Ok(m) => {
            let list =
                |pids: Vec<leader::core::NodeId>| pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
            let learners: Vec<_> = m.learners().collect();
            let voters = format!("servers {}", list(m.voters().collect()));
            if learners.is_empty() {
                voters
            } else {
                format!("{voters}; learners {}", list(learners))
            }
        }
        Err(e) => format!("unreadable ({e})"),
    }
}

/// Checks a snapshot image completely: its format and CRC, then that the key-value state in
/// it restores. Returns the snapshot and the number of keys.
pub fn check_image(image: &[u8]) -> Result<(Snapshot, usize), String> {
    let snapshot = decode_snapshot_image(image)?;
    let mut store = KvStore::new();
    store.restore(&snapshot.data).map_err(|why| format!("the key-value state does not restore: {why}"))?;
    Ok((snapshot, store.len()))
}

/// Write `bytes` to `out` durably: a temp file in the same directory, fsync, then into place
/// (a hard link, which never replaces an existing file, unless `force`: then a rename), and
/// an fsync of the directory. The temp file is removed on any failure.
pub fn write_durably(out: &Path, bytes: &[u8], force: bool) -> Result<(), String> {
    let name = out.file_name().ok_or_else(|| "expected a file name, not a directory".to_string())?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| format!("cannot create the temp file {}: {e}", tmp.display()))?;
        file.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        file.sync_all().map_err(|e| format!("cannot fsync {}: {e}", tmp.display()))?;
        drop(file);
        if force {
            fs::rename(&tmp, out).map_err(|e| format!("cannot rename {} to it: {e}", tmp.display()))?;
        } else {
            fs::hard_link(&tmp, out).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => "already exists; give --force to overwrite it".to_string(),
                _ => format!("cannot link {} to it: {e}", tmp.display()),
            })?;
            fs::remove_file(&tmp).map_err(|e| format!("cannot remove {}: {e}", tmp.display()))?;
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot fsync the directory {}: {e}", dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `leader backup --out FILE [--pid N] [--force]`: ask the leader (or server N) to take a
/// snapshot now, fetch its latest image, check it, and write it to FILE durably.
pub fn run_backup(config: Config, out: &Path, pid: Option<u64>, force: bool, timeout: Duration) -> Result<(), i32> {
    let fail = |what: String| {
        eprintln!("leader: backup: {what}");
        EXIT_FAILURE
    };
    // Refused before anything is asked of the cluster; write_durably checks again at the end
    // (without --force it never replaces a file, whoever created it meanwhile).
    if !force && out.symlink_metadata().is_ok() {
        return Err(fail(format!("{}: already exists; give --force to overwrite it", out.display())));
    }
    let pid = match pid {
        Some(_) => pids_of(&config, pid)?[0],
        None => find_leader(&config, LEADER_DEADLINE).ok_or_else(|| {
            fail(format!(
                "no server of {} is the leader (waited {} s); give --pid N to back up server N",
                config.path.display(),
                LEADER_DEADLINE.as_secs()
            ))
        })?,
    };
    let mut client = Client::new(config).with_timeout(timeout);
    client.snapshot(pid, timeout).map_err(|e| fail(format!("server {pid}: cannot take a snapshot: {e}")))?;
    let image = client
        .fetch_snapshot(pid, FETCH_ATTEMPTS)
        .map_err(|e| fail(format!("server {pid}: cannot fetch its snapshot: {e}")))?;
    let (snapshot, keys) = check_image(&image).map_err(|why| fail(format!("server {pid}'s snapshot: {why}")))?;
    write_durably(out, &image, force).map_err(|why| fail(format!("{}: {why}", out.display())))?;
    println!(
        "backup of server {pid} written to {}: snapshot at index {} (term {}), {} bytes, {keys} keys",
        out.display(),
        snapshot.meta.last_index,
        snapshot.meta.last_term,
        image.len()
    );
    Ok(())
}
