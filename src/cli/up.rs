//! `leader up`: the whole cluster of a config file on this machine, one process per server.

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

/// Start every server, print leader changes and exits until Ctrl-C, then stop them all.
pub fn run(config: &Config) -> Result<(), i32> {
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
    let started = Instant::now();
    let mut client = Client::new(config.clone()).with_timeout(WATCH_EVERY);
    let mut shown: Option<Option<(NodeId, Term)>> = None;
    while !interrupted.load(Ordering::SeqCst) {
        for (pid, status) in cluster.reap_exited() {
            println!("[{:>8.3}s] server {pid} exited ({status})", started.elapsed().as_secs_f64());
        }
        if cluster.running().is_empty() {
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
