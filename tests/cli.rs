//! The `leader` command as an operator meets it: exit codes and messages for bad configs and
//! bad arguments, the Go-style flags of the original, `status` (table and JSON lines), the
//! data-directory lock, a taken port, and `up` with its Ctrl-C and child-exit handling.
//!
//! Every process a test starts is owned by a [`Guard`] (or a `ProcessCluster`) that kills and
//! reaps it by pid on drop; every test has its own loopback ports and temp directories.

mod common;

use common::{start_all, wait_for, TestConfig};
use leader::client::Client;
use leader::core::NodeId;
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_leader");
const ELECTION_MS: u64 = 200;
const HEARTBEAT_MS: u64 = 50;
/// Longest wait for anything that should take well under a second (an exit, an election).
const DEADLINE: Duration = Duration::from_secs(10);
/// How long `status` waits for each server in these tests.
const STATUS_TIMEOUT_MS: &str = "300";

/// A child process killed (SIGKILL) and reaped by pid when dropped.
struct Guard(Child);

impl Guard {
    fn spawn(command: &mut Command) -> Guard {
        Guard(command.spawn().expect("spawn leader"))
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("try_wait on our child")
    }

    fn os_pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `leader ARGS`, run in `cwd` (so a stray `config.json` elsewhere is never picked up), with
/// the default log level.
fn leader(cwd: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(cwd).env_remove("RUST_LOG").stdin(Stdio::null());
    command
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// What a finished command left behind.
struct Exit {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run `command` to its end (failing the test if it runs past [`DEADLINE`]); its output goes
/// through files in `dir` named after `name`, so a full pipe can never block it.
fn run_to_exit(mut command: Command, dir: &Path, name: &str) -> Exit {
    let out = dir.join(format!("{name}.stdout"));
    let err = dir.join(format!("{name}.stderr"));
    command
        .stdout(File::create(&out).expect("create stdout file"))
        .stderr(File::create(&err).expect("create stderr file"));
    let mut guard = Guard::spawn(&mut command);
    let status = wait_for(DEADLINE, &format!("`{name}` to exit"), || guard.try_wait());
    Exit {
        code: status.code(),
        stdout: std::fs::read_to_string(&out).expect("read stdout"),
        stderr: std::fs::read_to_string(&err).expect("read stderr"),
    }
}

/// Start a long-running `leader` (a server) with its stderr in `log`.
fn spawn_logged(mut command: Command, log: &Path) -> Guard {
    command.stdout(Stdio::null()).stderr(File::create(log).expect("create log file"));
    Guard::spawn(&mut command)
}

/// Panic with the server's log if it has exited.
fn assert_alive(guard: &mut Guard, log: &Path) {
    if let Some(status) = guard.try_wait() {
        panic!("server exited early ({status}): {}", std::fs::read_to_string(log).unwrap_or_default());
    }
}

/// `leader status --json` on `config`: exit code and one parsed JSON object per line.
fn status_json(dir: &Path, config: &Path) -> (Option<i32>, Vec<Value>) {
    let args = ["status", "--json", "--timeout-ms", STATUS_TIMEOUT_MS, "--config", path_str(config)];
    let exit = run_to_exit(leader(dir, &args), dir, "status-json");
    let lines = exit
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    (exit.code, lines)
}

/// The leader's (pid, term) when all `n` lines answered, exactly one says "leader", and every
/// server reports that leader and term.
fn agreed_leader(lines: &[Value], n: usize) -> Option<(u64, u64)> {
    if lines.len() != n || lines.iter().any(|l| l.get("state").is_none()) {
        return None;
    }
    let leaders: Vec<&Value> = lines.iter().filter(|l| l["state"] == "leader").collect();
    let [leader] = leaders[..] else {
        return None;
    };
    let (pid, term) = (leader["pid"].as_u64()?, leader["term"].as_u64()?);
    lines.iter().all(|l| l["leader"].as_u64() == Some(pid) && l["term"].as_u64() == Some(term)).then_some((pid, term))
}

/// The line of server `pid` in `leader status --json` output.
fn line_of(lines: &[Value], pid: u64) -> &Value {
    lines
        .iter()
        .find(|l| l["pid"].as_u64() == Some(pid))
        .unwrap_or_else(|| panic!("no line for pid {pid} in {lines:?}"))
}

/// Run `leader ARGS` expecting a config error: exit code 2 and exactly one stderr line that
/// contains every `want`.
fn assert_config_error(dir: &Path, name: &str, args: &[&str], wants: &[&str]) {
    let exit = run_to_exit(leader(dir, args), dir, name);
    let stderr = exit.stderr.trim();
    assert_eq!(exit.code, Some(2), "{name}: `leader {args:?}`: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{name}: one message expected, got {stderr:?}");
    for want in wants {
        assert!(stderr.contains(want), "{name}: stderr {stderr:?} lacks {want:?}");
    }
}

#[test]
fn config_errors_exit_2_with_one_message_naming_field_and_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "readme-ports",
            r#"{"object": {"total": 2, "Servers": [{"mypid": 1, "url": "127.0.0.1:100001"}, {"mypid": 2, "url": "127.0.0.1:100002"}]}}"#,
            &["object.Servers[0].url", "100001", "out of range"],
        ),
        (
            "total-mismatch",
            r#"{"object": {"total": 3, "Servers": [{"mypid": 1, "url": "127.0.0.1:7001"}, {"mypid": 2, "url": "127.0.0.1:7002"}]}}"#,
            &["object.total is 3 but object.Servers lists 2 servers"],
        ),
        ("bad-json", "{\"object\": {\"total\": 2,\n \"Servers\": [}}", &["invalid JSON at line 2, column 14"]),
        (
            "duplicate-pid",
            r#"{"object": {"total": 2, "Servers": [{"mypid": 1, "url": "127.0.0.1:7001"}, {"mypid": 1, "url": "127.0.0.1:7002"}]}}"#,
            &["object.Servers[1].mypid: 1 is also the pid of object.Servers[0]"],
        ),
    ];
    for (name, text, wants) in cases {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, text).expect("write config");
        let file = path_str(&file);
        let mut wants = wants.to_vec();
        wants.push(file);
        let run = format!("{name}-run");
        assert_config_error(dir.path(), &run, &["--pid", "1", "--config", file], &wants);
        let status = format!("{name}-status");
        assert_config_error(dir.path(), &status, &["status", "--config", file], &wants);
    }

    // A pid the (valid) file does not list.
    let test = TestConfig::new(2, ELECTION_MS, HEARTBEAT_MS);
    let file = path_str(&test.path);
    assert_config_error(
        dir.path(),
        "unknown-pid",
        &["--pid", "9", "--config", file],
        &[file, "pid 9 is not in object.Servers (pids: 1, 2)"],
    );
    assert!(!test.config.data_dir_for(NodeId(9)).exists(), "refused before its data directory was made");

    // A file that does not exist.
    let missing = dir.path().join("no-such-config.json");
    let missing = path_str(&missing);
    let wants = [missing, "cannot read config file"];
    let args = ["--pid", "1", "--config", missing];
    assert_config_error(dir.path(), "missing-run", &args, &wants);
    let args = ["status", "--config", missing];
    assert_config_error(dir.path(), "missing-status", &args, &wants);
}

#[test]
fn no_arguments_or_pid_with_a_command_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_config_error(dir.path(), "no-args", &[], &["nothing to do", "--pid N", "leader --help"]);
    assert_config_error(
        dir.path(),
        "pid-and-status",
        &["--pid", "1", "status"],
        &["cannot be combined with a command"],
    );
}

#[test]
fn go_style_flags_run_a_server_that_status_reports() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let dir = test.dir.path();
    let log = dir.join("server-1.log");
    let args = ["-pid=1".to_string(), format!("-config={}", test.path.display())];
    let mut server = spawn_logged(leader(dir, &[args[0].as_str(), args[1].as_str()]), &log);

    let lines = wait_for(DEADLINE, "server 1 to answer status", || {
        assert_alive(&mut server, &log);
        let (code, lines) = status_json(dir, &test.path);
        let answered = lines.len() == 3 && line_of(&lines, 1).get("state").is_some();
        answered.then(|| {
            assert_eq!(code, Some(0), "status exits 0 when a server answers");
            lines
        })
    });
    let one = line_of(&lines, 1);
    assert_eq!(one["pid"], 1);
    let state = one["state"].as_str().expect("state is a string");
    assert!(state == "follower" || state == "candidate", "a lone server of three cannot lead: {one}");
    for pid in [2, 3] {
        let line = line_of(&lines, pid);
        assert_eq!(line["error"], "unreachable", "{line}");
        assert_eq!(*line, serde_json::json!({"pid": pid, "error": "unreachable"}));
    }
}

#[test]
fn status_json_and_table_on_a_running_cluster() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let dir = test.dir.path();
    let _cluster = start_all(&test);

    let lines = wait_for(DEADLINE, "one leader all three agree on", || {
        let (_, lines) = status_json(dir, &test.path);
        agreed_leader(&lines, 3).map(|_| lines)
    });
    let keys = ["pid", "state", "term", "leader", "commit_index", "last_applied", "last_index"];
    for line in &lines {
        for key in keys {
            assert!(line.get(key).is_some(), "no {key:?} in {line}");
        }
    }
    let pids: Vec<u64> = lines.iter().filter_map(|l| l["pid"].as_u64()).collect();
    assert_eq!(pids, [1, 2, 3]);

    let args = ["status", "--timeout-ms", STATUS_TIMEOUT_MS, "--config"];
    let mut command = leader(dir, &args);
    command.arg(&test.path);
    let exit = run_to_exit(command, dir, "status-table");
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    let mut rows = exit.stdout.lines();
    let header = rows.next().expect("a header line");
    for column in ["PID", "STATE", "TERM", "LEADER"] {
        assert!(header.contains(column), "header {header:?} lacks {column}");
    }
    let rows: Vec<&str> = rows.collect();
    assert_eq!(rows.len(), 3, "one row per server: {}", exit.stdout);
    for (row, pid) in rows.iter().zip(1..) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.first(), Some(&pid.to_string().as_str()), "{row:?}");
        assert!(cells.get(1).is_some_and(|c| c.parse::<u32>().is_ok()), "an OS pid: {row:?}");
        assert!(
            matches!(cells.get(2), Some(&("leader" | "follower" | "candidate"))),
            "server {pid} did not answer: {row:?}"
        );
    }
}

#[test]
fn status_exits_1_when_no_server_answers() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let dir = test.dir.path();
    let mut command = leader(dir, &["status", "--timeout-ms", "100", "--config"]);
    command.arg(&test.path);
    let exit = run_to_exit(command, dir, "status-nobody");
    assert_eq!(exit.code, Some(1), "{}", exit.stderr);
    assert!(exit.stderr.contains("no server") && exit.stderr.contains("answered"), "{:?}", exit.stderr);
}

#[test]
fn a_second_process_on_the_same_data_dir_is_refused() {
    let first = TestConfig::new(1, ELECTION_MS, HEARTBEAT_MS);
    let second = TestConfig::new(1, ELECTION_MS, HEARTBEAT_MS);
    let dir = first.dir.path();
    let data: PathBuf = dir.join("shared-data");
    let log = dir.join("first.log");
    let args = ["--pid", "1", "--config", path_str(&first.path), "--data-dir"];
    let mut command = leader(dir, &args);
    command.arg(&data);
    let mut server = spawn_logged(command, &log);
    let mut client = Client::new(first.config.clone()).with_timeout(Duration::from_millis(200));
    wait_for(DEADLINE, "the first server to answer status", || {
        assert_alive(&mut server, &log);
        client.status(NodeId(1)).ok()
    });

    let args = ["--pid", "1", "--config", path_str(&second.path), "--data-dir"];
    let mut command = leader(second.dir.path(), &args);
    command.arg(&data);
    let exit = run_to_exit(command, second.dir.path(), "second");
    assert_eq!(exit.code, Some(1), "{}", exit.stderr);
    let data = data.display().to_string();
    assert!(
        exit.stderr.contains(&data) && exit.stderr.contains("in use"),
        "stderr {:?} should name {data} and say it is in use",
        exit.stderr
    );
    // The first server is untouched.
    assert_alive(&mut server, &log);
    client.status(NodeId(1)).expect("the first server still answers");
}

#[test]
fn a_taken_port_fails_with_exit_1_naming_the_endpoint() {
    let test = TestConfig::new(1, ELECTION_MS, HEARTBEAT_MS);
    let dir = test.dir.path();
    let url = &test.servers[0].1;
    let _taken = TcpListener::bind(url.as_str()).expect("take the server's port");
    let exit = run_to_exit(leader(dir, &["--pid", "1", "--config", path_str(&test.path)]), dir, "taken-port");
    assert_eq!(exit.code, Some(1), "{}", exit.stderr);
    let endpoint = format!("tcp://{url}");
    assert!(exit.stderr.contains(&endpoint), "stderr {:?} should name {endpoint}", exit.stderr);
}

/// Lines of a child's stdout, read on a thread; everything seen is kept for messages.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn new(stdout: std::process::ChildStdout) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx, seen: Vec::new() }
    }

    /// The next line satisfying `want`, within [`DEADLINE`].
    fn until(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no line with {what} ({e}); output so far: {:#?}", self.seen),
            }
        }
    }
}

/// `M` from `... leader: server M (term T)`.
fn leader_in(line: &str) -> Option<u64> {
    let rest = line.split("leader: server ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// `(N, P)` from `server N: os pid P, ...`.
fn os_pid_in(line: &str) -> Option<(u64, u32)> {
    let (pid, rest) = line.strip_prefix("server ")?.split_once(": os pid ")?;
    Some((pid.parse().ok()?, rest.split(',').next()?.parse().ok()?))
}

fn process_gone(os_pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence; a zombie still counts as existing.
    let r = unsafe { libc::kill(os_pid as libc::pid_t, 0) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

#[test]
fn up_reports_leaders_and_exits_and_stops_everything_on_ctrl_c() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let dir = test.dir.path();
    let mut command = leader(dir, &["up", "--config", path_str(&test.path)]);
    command.stdout(Stdio::piped()).stderr(File::create(dir.join("up.stderr")).expect("create up log"));
    let mut up = Guard::spawn(&mut command);
    let mut lines = Lines::new(up.0.stdout.take().expect("piped stdout"));

    lines.until("a leader", |l| leader_in(l).is_some());
    let children: Vec<(u64, u32)> = lines.seen.iter().filter_map(|l| os_pid_in(l)).collect();
    let pids: Vec<u64> = children.iter().map(|c| c.0).collect();
    assert_eq!(pids, [1, 2, 3], "one os pid line per server: {:#?}", lines.seen);

    // Crash the leader; `up` must notice the exit and report a new leader.
    let (leader, _) = wait_for(DEADLINE, "one agreed leader", || agreed_leader(&status_json(dir, &test.path).1, 3));
    let leader_os_pid = children.iter().find(|c| c.0 == leader).expect("known").1;
    // SAFETY: kill(2) on a live child of `up`, which reaps it only after this signal.
    assert_eq!(unsafe { libc::kill(leader_os_pid as libc::pid_t, libc::SIGKILL) }, 0);
    let exited = format!("server {leader} exited");
    lines.until(&exited, |l| l.contains(&exited));
    let next = lines.until("a new leader", |l| leader_in(l).is_some());
    assert_ne!(leader_in(&next), Some(leader), "{next:?}");

    // Ctrl-C stops `up` cleanly, and it takes every server with it.
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(up.os_pid() as libc::pid_t, libc::SIGINT) }, 0);
    let status = wait_for(DEADLINE, "`up` to exit after SIGINT", || up.try_wait());
    assert_eq!(status.code(), Some(0), "{status}: {:#?}", lines.seen);
    lines.until("all servers stopped", |l| l.contains("all servers stopped"));
    for (pid, os_pid) in children {
        assert!(process_gone(os_pid), "server {pid} (os pid {os_pid}) outlived `up`");
    }
}

/// `leader ARGS --config FILE` to its end.
fn kv_command(dir: &Path, config: &Path, name: &str, args: &[&str]) -> Exit {
    let mut command = leader(dir, args);
    command.arg("--config").arg(config);
    run_to_exit(command, dir, name)
}

#[test]
fn put_get_delete_and_cas_from_the_command_line() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let dir = test.dir.path();
    let _cluster = start_all(&test);
    // The CLI finds the leader by itself (redirects, retries while the election runs).
    let put = kv_command(dir, &test.path, "put", &["put", "greeting", "hello world"]);
    assert_eq!((put.code, put.stdout.trim()), (Some(0), "OK"), "{}", put.stderr);
    let get = kv_command(dir, &test.path, "get", &["get", "greeting"]);
    assert_eq!((get.code, get.stdout.trim()), (Some(0), "hello world"), "{}", get.stderr);

    let missing = kv_command(dir, &test.path, "get-missing", &["get", "nope"]);
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);
    assert!(missing.stdout.is_empty());

    let cas = kv_command(dir, &test.path, "cas-wrong", &["cas", "greeting", "--expected", "bye", "--new", "x"]);
    assert_eq!(cas.code, Some(1), "a failed compare-and-set exits 1");
    assert!(cas.stderr.contains("hello world"), "{}", cas.stderr);
    let cas =
        kv_command(dir, &test.path, "cas-right", &["cas", "greeting", "--expected", "hello world", "--new", "hi"]);
    assert_eq!(cas.code, Some(0), "{}", cas.stderr);
    let get = kv_command(dir, &test.path, "get-after-cas", &["get", "greeting"]);
    assert_eq!(get.stdout.trim(), "hi");

    let delete = kv_command(dir, &test.path, "delete", &["delete", "greeting"]);
    assert_eq!((delete.code, delete.stdout.trim()), (Some(0), "deleted"), "{}", delete.stderr);
    let gone = kv_command(dir, &test.path, "get-deleted", &["get", "greeting"]);
    assert_eq!(gone.code, Some(1));

    // The writes went through the log: status shows them committed and applied everywhere.
    let lines = wait_for(DEADLINE, "every server to apply the writes", || {
        let (_, lines) = status_json(dir, &test.path);
        let applied: Vec<u64> = lines.iter().filter_map(|l| l["last_applied"].as_u64()).collect();
        (applied.len() == 3 && applied.iter().all(|&a| a >= 5)).then_some(lines)
    });
    for line in &lines {
        assert!(line["commit_index"].as_u64() >= line["last_applied"].as_u64(), "{line}");
        assert!(line["last_index"].as_u64() >= line["commit_index"].as_u64(), "{line}");
    }
}

#[test]
fn kv_commands_against_no_cluster_fail_fast_and_too_large_is_a_usage_error() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let dir = test.dir.path();
    let started = Instant::now();
    let put = kv_command(dir, &test.path, "put-dead", &["put", "k", "v"]);
    assert_eq!(put.code, Some(1));
    assert!(put.stderr.contains("nothing reachable"), "{}", put.stderr);
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast, not at the 10 s deadline");
    // A value over the limit is refused before anything is sent: a usage error, not a timeout.
    // (Through a file: one command-line argument is at most 128 KiB on Linux.)
    std::fs::write(dir.join("big"), vec![b'x'; 1_572_864]).unwrap();
    let big = dir.join("big");
    let put =
        kv_command(dir, &test.path, "put-big", &["put", "k", "--value-file", path_str(&big), "--deadline-ms", "60000"]);
    assert_eq!(put.code, Some(2), "{}", put.stderr);
    let want = "value too large: key and value are 1572865 bytes (limit 1572864, 1.5 MiB)";
    assert!(put.stderr.contains(want), "{}", put.stderr);
}

/// `leader bench --floor --json` measures the machine's floor (no timing is asserted: a
/// benchmark reports figures) and cleans up its scratch directory.
#[test]
fn bench_floor_reports_fsync_and_round_trip_figures_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let exit = run_to_exit(leader(dir.path(), &["bench", "--floor", "--json"]), dir.path(), "floor");
    assert_eq!(exit.code, Some(0), "stderr: {}", exit.stderr);
    let value: Value = serde_json::from_str(exit.stdout.trim()).expect("one JSON object");
    for key in
        ["fdatasync_p50_ms", "two_concurrent_fdatasync_p50_ms", "loopback_round_trip_p50_ms", "single_write_floor_ms"]
    {
        assert!(value[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {value}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().starts_with(".leader-floor")), "scratch left: {left:?}");
}

/// `leader status --json | head -1`: when the reader goes away the command ends quietly (by
/// SIGPIPE, as Unix tools do) instead of panicking in `println!`.
#[test]
fn a_closed_output_pipe_ends_status_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let test = TestConfig::new(2, ELECTION_MS, HEARTBEAT_MS);
    let mut command =
        leader(dir.path(), &["status", "--json", "--timeout-ms", "300", "--config", path_str(&test.path)]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn leader status");
    drop(child.stdout.take()); // the reader is gone before the answers (after 300 ms) are printed
    let out = child.wait_with_output().expect("wait for leader status");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "ended by SIGPIPE: {:?}", out.status);
}

#[test]
fn health_exits_0_for_a_healthy_cluster_and_1_naming_the_server_that_is_down() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let dir = test.dir.path();
    let mut cluster = start_all(&test);
    let health = |name: &str| {
        let args = ["health", "--timeout-ms", STATUS_TIMEOUT_MS, "--config", path_str(&test.path)];
        run_to_exit(leader(dir, &args), dir, name)
    };
    let healthy = wait_for(DEADLINE, "a healthy cluster", || Some(health("health-ok")).filter(|e| e.code == Some(0)));
    assert!(healthy.stdout.starts_with("healthy: server "), "{}", healthy.stdout);
    let (_, lines) = status_json(dir, &test.path);
    let leader = agreed_leader(&lines, 3).expect("a leader").0;
    let follower = test.config.pids().into_iter().find(|p| p.0 != leader).expect("a follower");
    cluster.kill(follower).expect("kill a follower");
    let sick = health("health-down");
    assert_eq!(sick.code, Some(1), "{}", sick.stdout);
    assert!(sick.stdout.contains(&format!("server {follower}: unreachable")), "{}", sick.stdout);
}

#[test]
fn failover_beside_a_running_cluster_refuses_up_front_with_the_cause() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let dir = test.dir.path();
    let _cluster = start_all(&test);
    wait_for(DEADLINE, "the cluster to answer", || {
        let (_, lines) = status_json(dir, &test.path);
        agreed_leader(&lines, 3)
    });
    let args = ["failover", "--rounds", "1", "--config", path_str(&test.path)];
    let exit = run_to_exit(leader(dir, &args), dir, "failover-beside");
    assert_eq!(exit.code, Some(1), "{}", exit.stderr);
    assert!(exit.stderr.contains("already answers") && exit.stderr.contains("a cluster is running"), "{}", exit.stderr);
    let (_, lines) = status_json(dir, &test.path);
    assert!(agreed_leader(&lines, 3).is_some(), "the running cluster was left alone");
}

#[test]
fn binary_values_round_trip_through_a_file_stdin_and_raw_output() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let dir = test.dir.path();
    let _cluster = start_all(&test);
    let bytes: Vec<u8> = (0..=255u8).chain([0, b'\n', 0xff, 0xfe]).collect();
    let file = dir.join("value.bin");
    std::fs::write(&file, &bytes).unwrap();
    let config = path_str(&test.path);
    let put = leader(dir, &["put", "from-file", "--value-file", path_str(&file), "--config", config]).output().unwrap();
    assert!(put.status.success(), "{put:?}");
    let mut put = leader(dir, &["put", "from-stdin", "--value-file", "-", "--config", config])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut put.stdin.take().unwrap(), &bytes[..100]).unwrap();
    assert!(put.wait().unwrap().success());
    let get = |key: &str| leader(dir, &["get", key, "--raw", "--config", config]).output().unwrap();
    assert_eq!(get("from-file").stdout, bytes, "every byte back, no newline added");
    assert_eq!(get("from-stdin").stdout, bytes[..100].to_vec());
    let missing = leader(dir, &["put", "k", "--value-file", "/nonexistent/v", "--config", config]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--value-file /nonexistent/v"), "{missing:?}");
    let neither = leader(dir, &["put", "k", "--config", config]).output().unwrap();
    assert_eq!(neither.status.code(), Some(2), "a value or --value-file is required");
}
