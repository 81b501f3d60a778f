//! What an operator asks when something is wrong, on a real cluster of processes: `leader
//! status` shows every server's OS pid; `--verbose` and `--json` say why each server is where
//! it is (its vote decisions with reasons, last contact with each peer, counters); `--health`
//! exits 1 naming the problem.
//!
//! Every process is owned by a `ProcessCluster` that kills and reaps it by pid on drop; own
//! loopback ports and temp directories.

mod common;

use common::{start_all, wait_for, TestConfig};
use leader::core::NodeId;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_leader");
const ELECTION_MS: u64 = 300;
const HEARTBEAT_MS: u64 = 50;
const DEADLINE: Duration = Duration::from_secs(15);

fn leader(config: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).args(["--timeout-ms", "500", "--config"]).arg(config);
    command.env_remove("RUST_LOG").stdin(Stdio::null()).output().expect("run leader")
}

fn json_lines(out: &Output) -> Vec<Value> {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// The leader's pid and term once all lines agree on one.
fn agreed(lines: &[Value]) -> Option<(u64, u64)> {
    let leader = lines.iter().find(|l| l["state"] == "leader")?;
    let (pid, term) = (leader["pid"].as_u64()?, leader["term"].as_u64()?);
    lines.iter().all(|l| l["leader"].as_u64() == Some(pid) && l["term"].as_u64() == Some(term)).then_some((pid, term))
}

#[test]
fn status_shows_os_pids_vote_reasons_and_contact_and_health_fails_on_a_dead_server() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let mut cluster = start_all(&test);
    let (lines, (leader_pid, term)) = wait_for(DEADLINE, "a leader every server follows", || {
        let lines = json_lines(&leader(&test.path, &["status", "--json"]));
        agreed(&lines).filter(|_| lines.len() == 3).map(|l| (lines, l))
    });
    for line in &lines {
        let pid = NodeId(line["pid"].as_u64().unwrap());
        assert_eq!(line["os_pid"].as_u64(), cluster.os_pid(pid).map(u64::from), "the OS pid of server {pid}: {line}");
        assert!(line["uptime_ms"].as_u64().is_some(), "{line}");
    }
    // The leader won an election: it started one and won it, and a majority granted it votes
    // in its term, each recorded with the reason "granted".
    let leader_line = lines.iter().find(|l| l["pid"] == leader_pid).unwrap();
    assert!(leader_line["elections_won"].as_u64() >= Some(1), "{leader_line}");
    let granted_by = lines
        .iter()
        .filter(|l| {
            l["votes"].as_array().unwrap().iter().any(|v| {
                v["candidate"] == leader_pid && v["term"] == term && v["kind"] == "Vote" && v["reason"] == "granted"
            })
        })
        .count();
    assert!(granted_by >= 1, "no follower recorded its granted vote for {leader_pid} in term {term}: {lines:?}");
    // A follower has heard from the leader recently (heartbeats every 50 ms).
    let heard = wait_for(DEADLINE, "recent contact with the leader", || {
        let lines = json_lines(&leader(&test.path, &["status", "--json"]));
        let follower = lines.iter().find(|l| l["state"] == "follower")?.clone();
        let ms = follower["last_contact_ms"][leader_pid.to_string()].as_u64()?;
        (ms < 5_000).then_some(ms)
    });
    assert!(heard < 5_000);

    let verbose = leader(&test.path, &["status", "--verbose"]);
    let text = String::from_utf8_lossy(&verbose.stdout);
    assert_eq!(verbose.status.code(), Some(0), "{text}");
    assert!(text.lines().next().unwrap().contains("OS_PID"), "{text}");
    assert!(text.contains(&format!("vote for {leader_pid} in term {term}: granted")), "{text}");
    assert!(text.contains("last contact: "), "{text}");

    let healthy = leader(&test.path, &["status", "--health"]);
    assert_eq!(healthy.status.code(), Some(0), "{}", String::from_utf8_lossy(&healthy.stderr));
    let follower = test.config.pids().into_iter().find(|p| p.0 != leader_pid).unwrap();
    cluster.kill(follower).expect("kill a follower");
    let sick = leader(&test.path, &["status", "--health"]);
    let stderr = String::from_utf8_lossy(&sick.stderr);
    assert_eq!(sick.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("server {follower}: unreachable")), "{stderr}");
}

/// `leader up` with its stdin and stdout piped: the lines it prints, read on a thread.
struct Up {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Up {
    fn start(config: &Path, args: &[&str]) -> Up {
        let mut command = Command::new(BIN);
        command.arg("up").args(args).arg("--config").arg(config).env_remove("RUST_LOG");
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = command.spawn().expect("spawn leader up");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Up { child, lines, seen: Vec::new() }
    }

    fn until(&mut self, what: &str) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(line) if line.contains(what) => {
                    self.seen.push(line.clone());
                    return line;
                }
                Ok(line) => self.seen.push(line),
                Err(e) => panic!("no line with {what:?} ({e}): {:#?}", self.seen),
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        use std::io::Write;
        writeln!(self.child.stdin.as_mut().expect("piped stdin"), "{line}").expect("write to up");
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // Its servers die with it (PR_SET_PDEATHSIG), so killing `up` by pid stops them all.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `P` from `server N: os pid P, ...` or `server N: restarted, os pid P`.
fn os_pid_after(line: &str) -> u32 {
    let rest = line.split("os pid ").nth(1).unwrap_or_else(|| panic!("no os pid in {line:?}"));
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn up_says_how_to_restart_a_server_that_exited_and_restarts_it_on_r_n() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let mut up = Up::start(&test.path, &[]);
    let first = os_pid_after(&up.until("server 2: os pid "));
    up.until("leader: server ");
    // SAFETY: kill(2) on a live grandchild: `up` reaps it only after the signal.
    assert_eq!(unsafe { libc::kill(first as libc::pid_t, libc::SIGKILL) }, 0);
    let exited = up.until("server 2 exited");
    assert!(exited.contains("type `r 2` + Enter to restart it"), "{exited}");
    up.type_line("r 9");
    assert!(up.until("pid 9").contains("pid 9 is not in"));
    up.type_line("r 2");
    let second = os_pid_after(&up.until("server 2: restarted, os pid "));
    assert_ne!(second, first);
    // The restarted server answers, with the new OS pid.
    wait_for(DEADLINE, "server 2 answering with its new OS pid", || {
        let lines = json_lines(&leader(&test.path, &["status", "--json"]));
        lines.iter().any(|l| l["pid"] == 2 && l["os_pid"] == second).then_some(())
    });
    up.type_line("r 2");
    assert!(up.until("server 2 is running").contains(&format!("os pid {second}")));
    up.type_line("q");
    up.until("all servers stopped");
    let status = wait_for(DEADLINE, "`up` to exit after q", || up.child.try_wait().expect("try_wait"));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn up_with_restart_starts_a_crashed_server_again_by_itself() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let mut up = Up::start(&test.path, &["--restart"]);
    let first = os_pid_after(&up.until("server 3: os pid "));
    up.until("leader: server ");
    // SAFETY: kill(2) on a live grandchild: `up` reaps it only after the signal.
    assert_eq!(unsafe { libc::kill(first as libc::pid_t, libc::SIGKILL) }, 0);
    let again = up.until("server 3 exited");
    assert!(again.contains("restarted (--restart)"), "{again}");
    let second = os_pid_after(&again);
    assert_ne!(second, first);
    wait_for(DEADLINE, "server 3 answering with its new OS pid", || {
        let lines = json_lines(&leader(&test.path, &["status", "--json"]));
        lines.iter().any(|l| l["pid"] == 3 && l["os_pid"] == second).then_some(())
    });
}

#[test]
fn top_prints_a_row_per_server_within_the_width_and_quits_on_q_in_a_terminal() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let _cluster = start_all(&test);
    wait_for(DEADLINE, "a leader", || agreed(&json_lines(&leader(&test.path, &["status", "--json"]))));
    // Not a terminal: frames in turn, each within $COLUMNS.
    let mut command = Command::new(BIN);
    command.args(["top", "--count", "2", "--interval-ms", "200", "--config"]).arg(&test.path);
    let out = command.env("COLUMNS", "44").env_remove("RUST_LOG").stdin(Stdio::null()).output().expect("run top");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.trim().is_empty()).collect();
    assert_eq!(frames.len(), 2, "{text}");
    for frame in frames {
        let lines: Vec<&str> = frame.lines().collect();
        assert!(lines[0].starts_with("leader top"), "{frame}");
        assert!(lines[1].starts_with("PID") && lines[1].contains("STATE"), "{frame}");
        assert_eq!(lines.len(), 5, "title, header, three servers: {frame}");
        assert_eq!(lines.iter().filter(|l| l.contains(" leader ")).count(), 1, "{frame}");
        assert!(lines.iter().all(|l| l.chars().count() <= 44), "{frame}");
    }
    // In a terminal (a pseudo-terminal from util-linux's script(1)): it draws in place and
    // `q` ends it at once, restoring the terminal.
    let top = format!("{BIN} top --interval-ms 200 --config {}", test.path.display());
    let mut script = Command::new("script");
    script.args(["-qec", &top, "/dev/null"]).env_remove("RUST_LOG");
    let mut guard = KillOnDrop(
        script.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("script(1)"),
    );
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdout = stdout;
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    while !String::from_utf8_lossy(&seen).contains("q quits") {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(bytes) => seen.extend(bytes),
            Err(e) => panic!("no frame on the terminal ({e}); it showed {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    use std::io::Write;
    guard.0.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    let status = wait_for(DEADLINE, "top to quit on q", || guard.0.try_wait().expect("try_wait"));
    assert!(status.success(), "{status}");
}

/// A child killed (SIGKILL) and reaped by pid when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
