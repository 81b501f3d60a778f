//! Command-line parsing and dispatch. Protocol logic lives in the library, not here.

mod args;
mod bench;
mod bench_floor;
mod failover;
mod fuzz;
mod health;
mod kv;
mod member;
mod restore;
mod sim;
mod snapshot;
mod status;
mod top;
mod transfer;
mod up;

use args::{Cli, Cmd};
use clap::Parser;
use leader::client::{ReadFrom, ReadPath};
use leader::config::Config;
use leader::core::NodeId;
use leader::node::{NodeOptions, Server};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Exit code for a bad config file or bad arguments.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code for a runtime failure (storage, sockets, unreachable cluster).
pub const EXIT_FAILURE: i32 = 1;

/// Rewrite Go-style single-dash long flags (`-pid=3`, `-config x`) into clap's `--pid=3`.
fn normalize_go_flags(args: Vec<OsString>) -> Vec<OsString> {
    const LONG: [&str; 7] = ["pid", "config", "data-dir", "json", "timeout-ms", "deadline-ms", "cluster-key"];
    args.into_iter()
        .map(|arg| match arg.to_str() {
            Some(s) if s.starts_with('-') && !s.starts_with("--") => {
                let name = s[1..].split('=').next().unwrap_or("");
                if LONG.contains(&name) {
                    OsString::from(format!("-{s}"))
                } else {
                    arg
                }
            }
            _ => arg,
        })
        .collect()
}

/// Load the config or print its one clear error. `--cluster-key` overrides the file's
/// `cluster_key_file`, and the key is checked now so that a bad key is a configuration error.
fn load_config(path: &PathBuf, cluster_key: Option<&PathBuf>) -> Result<Config, i32> {
    let mut config = Config::load(path).map_err(|e| {
        eprintln!("leader: {e}");
        e.exit_code()
    })?;
    if let Some(key) = cluster_key {
        config.cluster_key_file = Some(key.clone());
    }
    if let Some(path) = &config.cluster_key_file {
        leader::transport::auth::ClusterKey::load(path).map_err(|e| {
            eprintln!("leader: {e}");
            EXIT_CONFIG
        })?;
    }
    Ok(config)
}

/// Parse `args` (with the program name first) and run; returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(normalize_go_flags(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let default_level = match (&cli.command, cli.pid) {
        (None, Some(_)) => "info",
        // Recovery warnings on every mutated file would drown the report.
        (Some(Cmd::Fuzz { .. }), _) => "off",
        // Simulated servers log like real ones (a transfer abandoned, an invalid message):
        // thousands of lines per sweep; a failure prints its own trace.
        (Some(Cmd::Sim(_)), _) => "error",
        _ => "warn",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level)).init();
    let (config_path, key) = match args::resolve_cluster(&cli) {
        Ok(resolved) => resolved,
        Err(e) => {
            eprintln!("leader: {e}");
            return EXIT_CONFIG;
        }
    };
    let (config_path, key_file) = (&config_path, key.as_ref());
    if matches!(
        cli.command,
        Some(
            Cmd::Status { .. }
                | Cmd::Get { .. }
                | Cmd::Put { .. }
                | Cmd::Delete { .. }
                | Cmd::Cas { .. }
                | Cmd::Sim(_)
                | Cmd::Snapshot { .. }
                | Cmd::Completions { .. }
        )
    ) {
        die_quietly_on_closed_pipe();
    }
    let result = match (cli.command, cli.pid) {
        (Some(_), Some(_)) => {
            eprintln!("leader: --pid runs one server; it cannot be combined with a command");
            Err(EXIT_CONFIG)
        }
        (None, Some(pid)) => run_server(
            config_path,
            key_file,
            pid,
            NodeOptions { data_dir: cli.data_dir, metrics_url: cli.metrics, ..NodeOptions::default() },
        ),
        (None, None) => {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            eprintln!("leader: nothing to do: give --pid N to run a server, or a command (see leader --help)");
            Err(EXIT_CONFIG)
        }
        (Some(Cmd::Up { restart, .. }), None) => load_config(config_path, key_file).and_then(|c| up::run(&c, restart)),
        (Some(Cmd::Keygen { out }), None) => match leader::transport::auth::ClusterKey::generate(&out) {
            Ok(()) => {
                println!(
                    "wrote a new cluster key to {} (keep it private; set \"cluster_key_file\" in config.json)",
                    out.display()
                );
                Ok(())
            }
            Err(e) => {
                eprintln!("leader: {e}");
                Err(EXIT_FAILURE)
            }
        },
        (Some(Cmd::Status { json, verbose, health, max_lag, timeout_ms, .. }), None) => {
            let options = status::Options {
                json,
                verbose,
                health: health.then_some(max_lag),
                timeout: Duration::from_millis(timeout_ms),
            };
            load_config(config_path, key_file).and_then(|c| status::run(c, options))
        }
        (Some(Cmd::Member { action, deadline_ms, .. }), None) => {
            load_config(config_path, key_file).and_then(|c| member::run(c, action, Duration::from_millis(deadline_ms)))
        }
        (Some(Cmd::Top { interval_ms, count, .. }), None) => {
            load_config(config_path, key_file).and_then(|c| top::run(c, Duration::from_millis(interval_ms), count))
        }
        (Some(Cmd::Health { timeout_ms, max_lag, .. }), None) => {
            load_config(config_path, key_file).and_then(|c| health::run(c, Duration::from_millis(timeout_ms), max_lag))
        }
        (Some(Cmd::Snapshot { pid, timeout_ms, .. }), None) => load_config(config_path, key_file)
            .and_then(|c| snapshot::run_snapshot(c, pid, Duration::from_millis(timeout_ms))),
        (Some(Cmd::Backup { out, pid, force, timeout_ms, .. }), None) => load_config(config_path, key_file)
            .and_then(|c| snapshot::run_backup(c, &out, pid, force, Duration::from_millis(timeout_ms))),
        (Some(Cmd::Restore { file, data_dir: Some(dir), .. }), None) => restore::run(&file, &dir, None),
        (Some(Cmd::Restore { file, pid: Some(pid), data_dir: None, .. }), None) => load_config(config_path, key_file)
            .and_then(|c| {
                snapshot::pids_of(&c, Some(pid))
                    .and_then(|_| restore::run(&file, &c.data_dir_for(NodeId(pid)), Some(&c)))
            }),
        (Some(Cmd::Restore { pid: None, data_dir: None, .. }), None) => {
            unreachable!("clap requires --pid or --data-dir")
        }
        (Some(Cmd::Failover { args, .. }), None) => {
            load_config(config_path, key_file).and_then(|c| failover::run(&c, &args))
        }
        (Some(Cmd::Sim(args)), None) => sim::run_cli(&args),
        (Some(Cmd::Completions { shell }), None) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "leader", &mut std::io::stdout());
            Ok(())
        }
        (Some(Cmd::Fuzz { target, seconds, seed }), None) => fuzz::run_cli(&target, seconds, seed),
        (Some(Cmd::Bench { args, .. }), None) if args.floor => bench_floor::run(args.json),
        (Some(Cmd::Bench { args, .. }), None) if args.in_memory => bench::run_in_memory(&args),
        (Some(Cmd::Bench { args, .. }), None) => load_config(config_path, key_file).and_then(|c| bench::run(c, &args)),
        (Some(Cmd::Put { key, value, value_file, deadline_ms, .. }), None) => {
            kv::value_bytes(value, value_file.as_deref())
                .and_then(|value| run_kv(config_path, key_file, kv::KvCli::Put { key, value }, deadline_ms))
        }
        (Some(Cmd::Get { key, from, via_log, lease, raw, deadline_ms, .. }), None) => {
            let path = match (via_log, lease) {
                (true, _) => ReadPath::Log,
                (false, true) => ReadPath::Lease,
                (false, false) => ReadPath::ReadIndex,
            };
            let from = from.map_or(ReadFrom::Leader, |pid| ReadFrom::Server(NodeId(pid)));
            run_kv(config_path, key_file, kv::KvCli::Get { key, path, from, raw }, deadline_ms)
        }
        (Some(Cmd::Transfer { to, deadline_ms, .. }), None) => load_config(config_path, key_file)
            .and_then(|c| transfer::run(c, to.map(NodeId), Duration::from_millis(deadline_ms))),
        (Some(Cmd::Delete { key, deadline_ms, .. }), None) => {
            run_kv(config_path, key_file, kv::KvCli::Delete { key }, deadline_ms)
        }
        (Some(Cmd::Cas { key, expected, new, deadline_ms, .. }), None) => {
            run_kv(config_path, key_file, kv::KvCli::Cas { key, expected, new }, deadline_ms)
        }
    };
    match result {
        Ok(()) => 0,
        Err(code) => code,
    }
}

fn run_kv(config: &PathBuf, key: Option<&PathBuf>, command: kv::KvCli, deadline_ms: u64) -> Result<(), i32> {
    load_config(config, key).and_then(|c| kv::run(c, command, Duration::from_millis(deadline_ms)))
}

/// The nearest-rank `p`-th percentile of `sorted` (ascending), 0 for no samples: the one place
/// the benchmarks compute their percentiles.
fn percentile<T: Copy + Into<f64>>(sorted: &[T], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].into()
}

/// Set a flag on SIGINT/SIGTERM/SIGHUP.
fn interrupted_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let setter = Arc::clone(&flag);
    if let Err(e) = ctrlc::set_handler(move || setter.store(true, Ordering::SeqCst)) {
        log::warn!("cannot install the Ctrl-C handler: {e}");
    }
    flag
}

fn run_server(config_path: &PathBuf, key: Option<&PathBuf>, pid: u64, options: NodeOptions) -> Result<(), i32> {
    let config = load_config(config_path, key)?;
    // The server loads the key from config.cluster_key_file (which --cluster-key overrides).
    let server = Server::start_with(&config, NodeId(pid), options).map_err(|e| {
        eprintln!("leader: server {pid}: {e}");
        match e {
            leader::node::NodeError::Config(e) => e.exit_code(),
            _ => EXIT_FAILURE,
        }
    })?;
    // Stopping on a signal hands leadership over (if leading) and logs "stopped"; SIGKILL is
    // just as safe, because everything the server promised is already on disk. The signal
    // wakes this thread at once: a planned restart should cost the hand-over, not a poll.
    let (signalled, signal) = std::sync::mpsc::channel();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = signalled.send(());
    }) {
        log::warn!("cannot install the SIGTERM/Ctrl-C handler: {e}");
    }
    while !server.is_stopped() {
        match signal.recv_timeout(Duration::from_millis(50)) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if server.was_removed() {
        eprintln!("leader: server {pid}: removed from the cluster by a membership change; exiting");
    }
    server.stop().map_err(|e| {
        eprintln!("leader: server {pid}: {e}");
        EXIT_FAILURE
    })
}

/// Commands that only print (and own no child process) end quietly when their output pipe
/// closes (`leader status --json | head -1`), as Unix tools do, instead of panicking in
/// `println!`: Rust ignores SIGPIPE by default; this restores the default action.
fn die_quietly_on_closed_pipe() {
    // SAFETY: signal(2) with SIG_DFL changes only this process's disposition of SIGPIPE, before
    // any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use args::VERSION_TEXT;

    #[test]
    fn every_commands_help_has_an_example_and_the_exit_codes() {
        let mut command = <Cli as clap::CommandFactory>::command();
        let top = command.render_long_help().to_string();
        assert!(top.contains("Example:") && top.contains("Exit codes:"), "{top}");
        for sub in command.get_subcommands_mut().filter(|c| c.get_name() != "help") {
            let help = sub.render_long_help().to_string();
            assert!(help.contains("Example:\n  leader "), "leader {} --help lacks an example", sub.get_name());
            assert!(help.contains("Exit codes: 0 ok"), "leader {} --help lacks the exit codes", sub.get_name());
        }
    }

    #[test]
    fn completions_cover_every_command() {
        let mut command = <Cli as clap::CommandFactory>::command();
        let mut script = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut command, "leader", &mut script);
        let script = String::from_utf8(script).unwrap();
        for sub in <Cli as clap::CommandFactory>::command().get_subcommands() {
            assert!(script.contains(sub.get_name()), "the bash completion lacks {}", sub.get_name());
        }
    }

    #[test]
    fn the_version_names_the_formats_this_build_speaks_and_writes() {
        use leader::storage::{HARD_STATE_FORMAT_VERSION, SNAPSHOT_FORMAT_VERSION, WAL_FORMAT_VERSION};
        use leader::transport::client_wire::CLIENT_WIRE_VERSION;
        let wants = [
            format!("peer wire {}", leader::transport::WIRE_VERSION),
            format!("client protocol {CLIENT_WIRE_VERSION}"),
            format!("KV snapshot {}", leader::kv::KV_SNAPSHOT_VERSION),
            format!("WAL format {WAL_FORMAT_VERSION}"),
            format!("hard state {HARD_STATE_FORMAT_VERSION}"),
            format!("snapshot file {SNAPSHOT_FORMAT_VERSION}"),
        ];
        for want in wants {
            assert!(VERSION_TEXT.contains(&want), "{VERSION_TEXT:?} lacks {want:?}");
        }
    }

    #[test]
    fn go_style_flags_are_accepted() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let got = normalize_go_flags(args(&["leader", "-pid=3", "-config", "c.json", "-h", "status", "-json"]));
        assert_eq!(got, args(&["leader", "--pid=3", "--config", "c.json", "-h", "status", "--json"]));
        let cli = Cli::try_parse_from(normalize_go_flags(args(&["leader", "-pid=3"]))).unwrap();
        assert_eq!(cli.pid, Some(3));
        assert_eq!(args::resolve_cluster(&cli).unwrap().0, PathBuf::from("config.json"));
    }
}
