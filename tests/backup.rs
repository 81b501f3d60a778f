//! `leader snapshot`, `leader backup` and `leader restore` (issue 11) as an operator runs them:
//! a backup of a running cluster seeds a new cluster (other ports, other directories) that
//! serves every key; restore refuses a data directory with state and a damaged file; backup
//! never overwrites a file without --force; snapshot answers one line per server.
//!
//! Every process is owned by a `ProcessCluster` or a [`Guard`] that kills and reaps it by pid
//! on drop; every test has its own loopback ports and temp directories.

mod common;

use common::{acknowledged_leader, live_statuses, start_all, wait_for, TestConfig, TOLERANCE};
use leader::client::Client;
use leader::codec::encode;
use leader::core::{HardState, LogIndex, NodeId, Term};
use leader::kv::{KvCommand, KvOp, KvStore, StateMachine};
use leader::storage::{encode_snapshot_image, DiskStorage, SnapshotMeta, Storage};
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_leader");
/// Longest wait for a command that should finish in well under that.
const DEADLINE: Duration = Duration::from_secs(60);

/// A child process killed (SIGKILL) and reaped by pid when dropped.
struct Guard(Child);

impl Guard {
    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("try_wait on our child")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished command left behind.
struct Exit {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Run `leader ARGS` in `dir` to its end; output through files in `dir` named after `name`.
fn leader(dir: &Path, name: &str, args: &[&str]) -> Exit {
    let (out, err) = (dir.join(format!("{name}.stdout")), dir.join(format!("{name}.stderr")));
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(File::create(&out).expect("create stdout file"))
        .stderr(File::create(&err).expect("create stderr file"));
    let mut guard = Guard(command.spawn().expect("spawn leader"));
    let status = wait_for(DEADLINE, &format!("`leader {}` to exit", args.join(" ")), || guard.try_wait());
    Exit {
        code: status.code(),
        stdout: std::fs::read_to_string(&out).expect("read stdout"),
        stderr: std::fs::read_to_string(&err).expect("read stderr"),
    }
}

fn wait_leader(test: &TestConfig) -> NodeId {
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(500));
    wait_for(TOLERANCE, "a leader acknowledged by a majority", || {
        acknowledged_leader(&live_statuses(&mut client), test.config.servers.len()).map(|(p, _)| p)
    })
}

/// Write keys `k{i}` = `v{i}` for i in 0..count from `threads` clients at once; the index of
/// the last write acknowledged.
fn write_keys(test: &TestConfig, count: u64, threads: u64) -> LogIndex {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let config = test.config.clone();
                scope.spawn(move || {
                    let mut client = Client::new(config).with_timeout(Duration::from_millis(500));
                    let mut last = LogIndex(0);
                    for i in (t..count).step_by(threads as usize) {
                        last = last.max(client.put(format!("k{i}").as_bytes(), value(i).as_bytes()).expect("put"));
                    }
                    last
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("writer")).max().unwrap_or(LogIndex(0))
    })
}

/// Wait until every server has applied `index` (a follower learns the commit index a
/// heartbeat later than the leader).
fn wait_applied_everywhere(test: &TestConfig, index: LogIndex) {
    let mut client = Client::new(test.config.clone());
    wait_for(TOLERANCE, &format!("every server to apply {index}"), || {
        let statuses = live_statuses(&mut client);
        (statuses.len() == test.config.servers.len() && statuses.iter().all(|s| s.last_applied >= index)).then_some(())
    });
}

/// The value written under `k{i}`: 1,000 of them make a backup of more than one 1 MiB fetch
/// chunk.
fn value(i: u64) -> String {
    format!("v{i}-{}", "x".repeat(1100))
}

/// A backup image made without a cluster: a KV store holding `keys` keys, as a snapshot at
/// index 10, term 2 of servers 1, 2, 3.
fn synthetic_backup(keys: u64) -> Vec<u8> {
    let mut store = KvStore::new();
    for i in 0..keys {
        let op = KvOp::Put { key: format!("k{i}").into_bytes(), value: value(i).into_bytes() };
        store.apply_command(LogIndex(i + 1), KvCommand { client_id: 7, seq: i + 1, op });
    }
    let data = (store.snapshot())();
    let meta = SnapshotMeta { last_index: LogIndex(10), last_term: Term(2), config: encode(&vec![1u64, 2, 3]) };
    encode_snapshot_image(&meta, &data)
}

/// Size of the one snapshot file a restore installed into `dir` (the backup's image, its
/// configuration rewritten to the new membership: docs/cli.md, `leader restore`).
fn installed_len(dir: &Path) -> u64 {
    let files: Vec<_> = std::fs::read_dir(dir.join("snap")).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(files.len(), 1, "one snapshot file: {files:?}");
    files[0].metadata().unwrap().len()
}

/// The number in `line` after `word ` (e.g. "index 12" → 12).
fn number_after(line: &str, word: &str) -> u64 {
    let rest =
        &line[line.find(&format!("{word} ")).unwrap_or_else(|| panic!("no {word:?} in {line:?}")) + word.len() + 1..];
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap_or_else(|_| panic!("{line:?}"))
}

#[test]
fn a_backup_restores_into_a_fresh_cluster_and_every_key_reads_back() {
    const KEYS: u64 = 1_000;
    let old = TestConfig::new(3, 400, 50);
    let dir = old.dir.path();
    let mut cluster = start_all(&old);
    wait_leader(&old);
    let written = write_keys(&old, KEYS, 8);
    let file = dir.join("cluster.backup");
    let backup = leader(dir, "backup", &["backup", "--out", path_str(&file), "--config", path_str(&old.path)]);
    assert_eq!(backup.code, Some(0), "backup: {}", backup.stderr);
    let line = backup.stdout.trim();
    assert!(
        line.starts_with("backup of server ") && line.contains(&format!("written to {}", file.display())),
        "{line}"
    );
    assert!(number_after(line, "index") >= written.0, "the backup is at least as recent as the last write: {line}");
    assert!(line.ends_with(&format!(", {KEYS} keys")), "{line}");
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(number_after(line, "),"), size, "{line}");
    assert!(size > leader::transport::client_wire::FETCH_SNAPSHOT_BYTES_MAX as u64, "fetched in several chunks");
    cluster.stop_all();
    drop(cluster);

    // A new cluster: other ports, other directories, so another cluster id too.
    let new = TestConfig::new(3, 400, 50);
    assert_ne!(new.config.cluster_id, old.config.cluster_id);
    for pid in new.config.pids() {
        let name = format!("restore-{pid}");
        let args = ["restore", path_str(&file), "--config", path_str(&new.path), "--pid", &pid.0.to_string()];
        let restore = leader(new.dir.path(), &name, &args);
        assert_eq!(restore.code, Some(0), "restore {pid}: {}", restore.stderr);
        let data_dir = new.config.data_dir_for(pid);
        assert!(
            restore.stdout.starts_with(&format!(
                "restored {} into {}: snapshot at index ",
                file.display(),
                data_dir.display()
            )),
            "{}",
            restore.stdout
        );
        assert!(restore.stdout.contains(&format!("{KEYS} keys (recorded configuration: servers 1, 2, 3)")));
    }
    let _cluster = start_all(&new);
    wait_leader(&new);
    let mut client = Client::new(new.config.clone()).with_timeout(Duration::from_millis(1000));
    for i in 0..KEYS {
        let got = client.get(format!("k{i}").as_bytes()).expect("get from the restored cluster");
        assert_eq!(got, Some(value(i).into_bytes()), "k{i}");
    }
    // And it takes writes after the restored index.
    let index = client.put(b"after", b"restore").expect("put after restore");
    assert!(index.0 > written.0, "new entries follow the restored snapshot");
}

#[test]
fn snapshot_prints_one_line_per_server_at_or_past_what_was_written_and_names_an_unreachable_one() {
    let test = TestConfig::new(3, 400, 50);
    let dir = test.dir.path();
    let mut cluster = start_all(&test);
    wait_leader(&test);
    let written = write_keys(&test, 200, 4);
    wait_applied_everywhere(&test, written);
    let config = path_str(&test.path);
    let all = leader(dir, "snapshot-all", &["snapshot", "--config", config]);
    assert_eq!(all.code, Some(0), "{}", all.stderr);
    let lines: Vec<&str> = all.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", all.stdout);
    for (pid, line) in (1..=3).zip(&lines) {
        assert!(line.starts_with(&format!("server {pid}: snapshot at index ")), "{line}");
        assert!(number_after(line, "index") >= written.0, "{line} (last write at {written})");
        assert!(line.contains("(term ") && line.ends_with(" bytes"), "{line}");
        let snap = test.config.data_dir_for(NodeId(pid)).join("snap");
        let files: Vec<String> =
            snap.read_dir().unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(files.iter().any(|f| f.ends_with(".snap")), "server {pid} has a snapshot file: {files:?}");
    }

    let one = leader(dir, "snapshot-one", &["snapshot", "--pid", "2", "--config", config]);
    assert_eq!((one.code, one.stdout.lines().count()), (Some(0), 1), "{}", one.stderr);
    assert!(one.stdout.starts_with("server 2: snapshot at index "), "{}", one.stdout);

    let unknown = leader(dir, "snapshot-unknown", &["snapshot", "--pid", "9", "--config", config]);
    assert_eq!(unknown.code, Some(2));
    assert!(unknown.stderr.contains("pid 9 is not in object.Servers (pids: 1, 2, 3)"), "{}", unknown.stderr);

    cluster.kill(NodeId(3)).expect("SIGKILL");
    let args = ["snapshot", "--timeout-ms", "500", "--config", config];
    let partial = leader(dir, "snapshot-partial", &args);
    assert_eq!(partial.code, Some(1), "{}", partial.stdout);
    let lines: Vec<&str> = partial.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", partial.stdout);
    assert_eq!(lines[2], "server 3: unreachable");
    assert!(lines[0].starts_with("server 1: snapshot at index ") && lines[1].starts_with("server 2: snapshot"));
    assert_eq!(partial.stderr.trim(), format!("leader: snapshot: 1 of 3 servers of {config} took no snapshot"));
}

#[test]
fn backup_refuses_to_overwrite_a_file_without_force() {
    let test = TestConfig::new(3, 400, 50);
    let dir = test.dir.path();
    let _cluster = start_all(&test);
    wait_leader(&test);
    let written = write_keys(&test, 50, 2);
    // --pid 2 backs up what server 2 has applied: all of it, once it has caught up.
    wait_applied_everywhere(&test, written);
    let file = dir.join("existing.backup");
    std::fs::write(&file, b"precious").unwrap();
    let config = path_str(&test.path);
    let refused = leader(dir, "backup-refused", &["backup", "--out", path_str(&file), "--config", config]);
    assert_eq!(refused.code, Some(1));
    assert_eq!(
        refused.stderr.trim(),
        format!("leader: backup: {}: already exists; give --force to overwrite it", file.display())
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"precious", "the file is untouched");

    let forced = leader(
        dir,
        "backup-forced",
        &["backup", "--out", path_str(&file), "--force", "--pid", "2", "--config", config],
    );
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    assert!(forced.stdout.starts_with("backup of server 2 written to "), "{}", forced.stdout);
    assert!(forced.stdout.trim().ends_with(", 50 keys"), "{}", forced.stdout);
    let image = std::fs::read(&file).unwrap();
    leader::storage::decode_snapshot_image(&image).expect("a valid image");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temp file left behind: {leftovers:?}");
}

#[test]
fn restore_refuses_a_data_directory_that_holds_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("b.backup");
    std::fs::write(&file, synthetic_backup(20)).unwrap();
    let target = dir.join("server-a");
    let first = leader(dir, "restore-first", &["restore", path_str(&file), "--data-dir", path_str(&target)]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(
        first.stdout.trim(),
        format!(
            "restored {} into {}: snapshot at index 10 (term 2), {} bytes, 20 keys (recorded configuration: servers 1, 2, 3)",
            file.display(),
            target.display(),
            installed_len(&target)
        )
    );
    let again = leader(dir, "restore-again", &["restore", path_str(&file), "--data-dir", path_str(&target)]);
    assert_eq!(again.code, Some(1));
    assert!(
        again.stderr.starts_with(&format!(
            "leader: restore: data directory {} already holds a snapshot at index 10 (term 2); restore only seeds new servers",
            target.display()
        )),
        "{}",
        again.stderr
    );

    // A directory with only a hard state (a server that voted once) is refused too.
    let voted = dir.join("server-b");
    let mut storage = DiskStorage::open(&voted).unwrap();
    storage
        .save_hard_state(&HardState { current_term: Term(4), voted_for: Some(NodeId(1)), commit_index: LogIndex(0) })
        .unwrap();
    drop(storage);
    let refused = leader(dir, "restore-voted", &["restore", path_str(&file), "--data-dir", path_str(&voted)]);
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .contains(&format!("data directory {} already holds a hard state (term 4, vote 1)", voted.display())),
        "{}",
        refused.stderr
    );
    assert!(DiskStorage::open(&voted).unwrap().snapshot_meta().is_none(), "nothing was installed");
}

#[test]
fn restore_refuses_a_damaged_file_naming_it_and_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut image = synthetic_backup(20);
    let at = image.len() / 2;
    image[at] ^= 0x01;
    let file = dir.join("damaged.backup");
    std::fs::write(&file, &image).unwrap();
    let target = dir.join("new-server");
    let exit = leader(dir, "restore-damaged", &["restore", path_str(&file), "--data-dir", path_str(&target)]);
    assert_eq!(exit.code, Some(1));
    assert!(
        exit.stderr
            .starts_with(&format!("leader: restore: {}: not a valid backup: snapshot image at byte ", file.display())),
        "{}",
        exit.stderr
    );
    assert!(exit.stderr.contains("checksum mismatch"), "the reason: {}", exit.stderr);
    assert!(exit.stdout.is_empty());
    assert!(!target.exists(), "nothing was created for a damaged file");

    // An intact image whose state is not a key-value store's.
    let meta = SnapshotMeta { last_index: LogIndex(5), last_term: Term(1), config: encode(&vec![1u64]) };
    let other = dir.join("other.backup");
    std::fs::write(&other, encode_snapshot_image(&meta, b"not a kv snapshot")).unwrap();
    let exit = leader(dir, "restore-not-kv", &["restore", path_str(&other), "--data-dir", path_str(&target)]);
    assert_eq!(exit.code, Some(1));
    assert!(
        exit.stderr.starts_with(&format!(
            "leader: restore: {}: not a valid backup: the key-value state does not restore: ",
            other.display()
        )),
        "{}",
        exit.stderr
    );
}
