//! `leader up`: the whole cluster of a config file on this machine, one process per server.
//! While it runs it reads commands on standard input (`r N` restarts server N, `k N` kills it,
//! `t N` stops it, `q` stops everything), so a demo of a crash and a restart needs no second
//! terminal; `--restart` restarts every server that exits on its own.

use super::{interrupted_flag, EXIT_FAILURE};
use leader::client::Client;
use leader::config::Config;
use leader::core::{NodeId, Role, Term};
use leader::process::{ChildLogs, ProcessCluster};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often `up` looks at its servers.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// The cluster-wide view `up` prints when it changes: the leader of the highest term.
pub fn leader_of(
    answers: &[(NodeId, Result<leader::transport::client_wire::Status, leader::client::CallError>)],
) -> Option<(NodeId, Term)> {
    answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok())
        .filter(|s| s.role == Role::Leader)
        .max_by_key(|s| s.term)
        .map(|s| (s.pid, s.term))
}

/// What `up` prints when it starts, and for `h`.
const HELP: &str = "type `r N` + Enter to restart server N, `k N` to kill it (SIGKILL), `t N` to stop it (SIGTERM), \
                    `q` to stop them all";

/// A command typed on `up`'s standard input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Typed {
    /// `r N`: start server N again (it must have exited).
    Restart(NodeId),
    /// `k N`: crash server N (SIGKILL).
    Kill(NodeId),
    /// `t N`: stop server N (SIGTERM: it hands leadership over first).
    Terminate(NodeId),
    /// `q`: stop every server and exit.
    Quit,
    /// `h` (or anything not understood): print the commands.
    Help,
}

/// Parse one typed line; the error says what was wrong.
pub fn parse_typed(line: &str, config: &Config) -> Result<Typed, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let pid = |arg: Option<&&str>| -> Result<NodeId, String> {
        let arg = arg.ok_or("which server? e.g. `r 2`")?;
        let pid = arg.parse::<u64>().map(NodeId).map_err(|_| format!("`{arg}` is not a server pid"))?;
        config.server(pid).map(|_| pid).map_err(|e| e.to_string())
    };
    match words.first().copied() {
        Some("r" | "restart") => pid(words.get(1)).map(Typed::Restart),
        Some("k" | "kill") => pid(words.get(1)).map(Typed::Kill),
        Some("t" | "stop") => pid(words.get(1)).map(Typed::Terminate),
        Some("q" | "quit") => Ok(Typed::Quit),
        _ => Ok(Typed::Help),
    }
}

/// Lines typed on standard input, read on a thread (none when stdin is closed or not there).
fn typed_lines() -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

/// Carry out one typed command; `false` to stop `up`.
fn obey(cluster: &mut ProcessCluster, typed: Typed) -> bool {
    let result = match typed {
        Typed::Restart(pid) if cluster.running().contains(&pid) => {
            Err(format!("server {pid} is running (os pid {}); `k {pid}` or `t {pid}` first", os_pid(cluster, pid)))
        }
        Typed::Restart(pid) => cluster.start(pid).map(|os| format!("server {pid}: restarted, os pid {os}")).map_err(io),
        Typed::Kill(pid) | Typed::Terminate(pid) if !cluster.running().contains(&pid) => {
            Err(format!("server {pid} is not running; `r {pid}` starts it"))
        }
        Typed::Kill(pid) => cluster.kill(pid).map(|()| format!("server {pid}: killed (SIGKILL)")).map_err(io),
        Typed::Terminate(pid) => {
            cluster.terminate(pid).map(|()| format!("server {pid}: stopped (SIGTERM)")).map_err(io)
        }
        Typed::Quit => return false,
        Typed::Help => Ok(HELP.to_string()),
    };
    match result {
        Ok(said) => println!("{said}"),
        Err(e) => println!("{e}"),
    }
    true
}

fn os_pid(cluster: &ProcessCluster, pid: NodeId) -> String {
    cluster.os_pid(pid).map_or("?".into(), |p| p.to_string())
}

/// Start every server, print leader changes and exits until Ctrl-C (or `q`), then stop them
/// all; with `auto_restart`, a server that exits on its own is started again.
pub fn run(config: &Config, auto_restart: bool) -> Result<(), i32> {
    let exe = std::env::current_exe().map_err(|e| {
        eprintln!("leader: cannot find my own executable: {e}");
        EXIT_FAILURE
    })?;
    let interrupted = interrupted_flag();
    let key_args: Vec<String> =
        config.cluster_key_file.iter().flat_map(|k| ["--cluster-key".to_string(), k.display().to_string()]).collect();
    let key_args: Vec<&str> = key_args.iter().map(String::as_str).collect();
    let mut cluster = ProcessCluster::new(exe, &config.path, ChildLogs::Inherit).with_args(&key_args);
    println!("starting {} servers from {} (Ctrl-C stops them all)", config.servers.len(), config.path.display());
    for server in &config.servers {
        match cluster.start(server.pid) {
            Ok(os_pid) => println!(
                "server {}: os pid {os_pid}, peers at {}, clients at {}",
                server.pid, server.endpoint, server.client_endpoint
            ),
            Err(e) => {
                eprintln!("leader: cannot start server {}: {e}", server.pid);
                return Err(EXIT_FAILURE);
            }
        }
    }
    println!("{HELP}");
    let typed = typed_lines();
    let started = Instant::now();
    let mut client = Client::new(config.clone()).with_timeout(WATCH_EVERY);
    let mut shown: Option<Option<(NodeId, Term)>> = None;
    'watch: while !interrupted.load(Ordering::SeqCst) {
        while let Ok(line) = typed.try_recv() {
            match parse_typed(&line, config) {
                Ok(command) if !obey(&mut cluster, command) => break 'watch,
                Ok(_) => {}
                Err(e) => println!("{e}"),
            }
        }
        for (pid, status) in cluster.reap_exited() {
            let t = started.elapsed().as_secs_f64();
            if auto_restart {
                match cluster.start(pid) {
                    Ok(os) => {
                        println!("[{t:>8.3}s] server {pid} exited ({status}); restarted (--restart), os pid {os}")
                    }
                    Err(e) => println!("[{t:>8.3}s] server {pid} exited ({status}); cannot restart it: {e}"),
                }
            } else {
                println!("[{t:>8.3}s] server {pid} exited ({status}); type `r {pid}` + Enter to restart it");
            }
        }
        if cluster.running().is_empty() && !auto_restart {
            if interrupted.load(Ordering::SeqCst) {
                break; // a terminal's Ctrl-C reached the servers too, and they stopped first
            }
            println!("every server has exited");
            return Err(EXIT_FAILURE);
        }
        let leader = leader_of(&client.status_all());
        if shown != Some(leader) {
            let t = started.elapsed().as_secs_f64();
            match leader {
                Some((pid, term)) => println!("[{t:>8.3}s] leader: server {pid} (term {term})"),
                None => println!("[{t:>8.3}s] no leader"),
            }
            shown = Some(leader);
        }
        std::thread::sleep(WATCH_EVERY);
    }
    println!("stopping {} servers", cluster.running().len());
    cluster.stop_all();
    println!("all servers stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_commands_parse_and_bad_ones_say_why() {
        let json = r#"{"object": {"total": 2, "Servers": [{"mypid": 1, "url": "127.0.0.1:1"},
                       {"mypid": 2, "url": "127.0.0.1:2"}]}}"#;
        let config = Config::parse(json, "up.json").expect("a valid config");
        assert_eq!(parse_typed("r 2", &config), Ok(Typed::Restart(NodeId(2))));
        assert_eq!(parse_typed("  kill 1 ", &config), Ok(Typed::Kill(NodeId(1))));
        assert_eq!(parse_typed("t 1", &config), Ok(Typed::Terminate(NodeId(1))));
        assert_eq!(parse_typed("q", &config), Ok(Typed::Quit));
        assert_eq!(parse_typed("what", &config), Ok(Typed::Help));
        assert_eq!(parse_typed("r", &config), Err("which server? e.g. `r 2`".into()));
        assert_eq!(parse_typed("r x", &config), Err("`x` is not a server pid".into()));
        assert!(parse_typed("r 7", &config).unwrap_err().contains('7'));
    }
}
