//! The command line's shape: the top-level flags, every command and its options. An option
//! appears only on the commands that use it: `--config` and `--cluster-key` ([`ClusterArgs`])
//! on those that talk to or start a cluster, not on `sim`, `fuzz`, `keygen` or `completions`.

use super::{bench, failover, member, sim};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// `leader --version`: the build and the formats it speaks and writes (a unit test keeps the
/// numbers equal to the constants).
pub const VERSION_TEXT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (peer wire 1, client protocol 1, KV snapshot 1; storage: WAL format 2, hard state 1, snapshot file 1)"
);

/// The exit codes, the same for every command (docs/cli.md).
macro_rules! exit_codes {
    () => {
        "Exit codes: 0 ok; 1 a runtime failure or a negative answer (no server answered, a data \
         directory in use, a port taken, an fsync failed; get: not found; cas: not swapped; health: \
         unhealthy); 2 bad configuration or arguments."
    };
}

/// A command's `--help` ends with an example and the exit codes.
macro_rules! help_tail {
    ($example:literal) => {
        concat!("Example:\n  ", $example, "\n\n", exit_codes!())
    };
}

#[derive(Parser, Debug)]
#[command(
    name = "leader",
    version = VERSION_TEXT,
    about = "Raft consensus over ZeroMQ: one process per server",
    after_help = concat!("Example:\n  leader up\n  leader --pid 1 --config config.json\n\n", exit_codes!())
)]
pub struct Cli {
    /// Run server PID of the config file (the original's `leader -pid=N`).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u64>,
    /// The cluster's config.json (default: config.json). Commands take it after their name
    /// (`leader status --config FILE`); before it, it is accepted for commands that read one.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This server's data directory (default: the config's data_dir/<pid>).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (host:port; default: the server's
    /// metrics_url in the config, if any; see docs/metrics.md).
    #[arg(long, value_name = "ADDR", requires = "pid", value_parser = leader::config::parse_metrics_url)]
    pub metrics: Option<String>,
    /// The cluster key file (default: the config's cluster_key_file, if any): every message is
    /// authenticated with it (see docs/security.md).
    #[arg(long, value_name = "FILE")]
    pub cluster_key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Start every server of the config as its own process; Ctrl-C stops them all. While it
    /// runs, type `r N` (restart server N), `k N` (kill it), `t N` (stop it) or `q` + Enter.
    #[command(after_help = help_tail!("leader up --config config.json\n  leader up --restart"))]
    Up {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Restart every server that exits on its own (a crash, a kill -9), at once.
        #[arg(long)]
        restart: bool,
    },
    /// Write a new random cluster key (hex, mode 0600) for `cluster_key_file`/--cluster-key.
    #[command(after_help = help_tail!("leader keygen --out cluster.key"))]
    Keygen {
        /// Where to write it (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Show each server's role, term, leader and OS pid; --verbose says why (vote decisions with
    /// reasons, last contact with each peer, dropped input).
    #[command(after_help = help_tail!("leader status --verbose\n  leader status --json\n  leader status --health"))]
    Status {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// One JSON object per line per server instead of a table (with everything --verbose shows).
        #[arg(long)]
        json: bool,
        /// After the table: each server's recent vote decisions and why, its last contact with
        /// each peer, and its non-zero counters of dropped or ignored input.
        #[arg(long, short)]
        verbose: bool,
        /// Also check health as `leader health` does: exit 1 (with the problems on stderr) when
        /// there is no leader, a server is unreachable or one lags by more than --max-lag.
        #[arg(long)]
        health: bool,
        /// With --health: entries a server may have applied fewer than the leader committed.
        #[arg(long, default_value_t = 1000, requires = "health")]
        max_lag: u64,
        /// How long to wait for each server's answer, in ms.
        #[arg(long, default_value_t = 500)]
        timeout_ms: u64,
    },
    /// Show or change the membership (thesis §4): `list`, `add PID URL` (joins as a learner,
    /// promoted once caught up), `remove PID`, `promote PID` — one server at a time.
    #[command(after_help = help_tail!("leader member add 4 127.0.0.1:7004\n  leader member remove 2\n  leader member list"))]
    Member {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(subcommand)]
        action: member::MemberCmd,
        /// Give up after this long (ms).
        #[arg(long, default_value_t = 30_000, global = true)]
        deadline_ms: u64,
    },
    /// A live view, one row per server (role, term, leader, lag, writes/s, last contact,
    /// indexes), redrawn in place; q or Ctrl-C quits. Not a terminal: prints frames in turn.
    #[command(after_help = help_tail!("leader top --interval-ms 500"))]
    Top {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Time between frames, in ms.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..))]
        interval_ms: u64,
        /// Stop after this many frames (default: until q or Ctrl-C).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Exit 0 when every server answers, all follow one leader in one term and none lags by more
    /// than --max-lag entries; else exit 1 with one line per problem.
    #[command(after_help = help_tail!("leader health --max-lag 500"))]
    Health {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// How long to wait for each server's answer, in ms.
        #[arg(long, default_value_t = 500)]
        timeout_ms: u64,
        /// Entries a server may have applied fewer than the leader committed.
        #[arg(long, default_value_t = 1000)]
        max_lag: u64,
    },
    /// Store VALUE (or the bytes of --value-file) under KEY (through the leader; follows
    /// redirects, retries on leader change).
    #[command(after_help = help_tail!("leader put greeting \"hello world\"\n  leader put blob --value-file photo.jpg"))]
    #[command(group(clap::ArgGroup::new("input").required(true).args(["value", "value_file"])))]
    Put {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The key.
        key: String,
        /// The value (the command-line string's UTF-8 bytes).
        value: Option<String>,
        /// Read the value from FILE, byte for byte (`-`: standard input).
        #[arg(long, value_name = "FILE")]
        value_file: Option<PathBuf>,
        /// Give up after this long (ms).
        #[arg(long, default_value_t = 10_000)]
        deadline_ms: u64,
    },
    /// Print the value of KEY (linearizable; by default a ReadIndex read from the leader,
    /// which costs no log entry). Missing: exit 1.
    #[command(after_help = help_tail!("leader get greeting --from 3"))]
    Get {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The key.
        key: String,
        /// Read from server PID (a follower read when it follows: it asks the leader for the
        /// read index and answers from its own state).
        #[arg(long, value_name = "PID", conflicts_with = "via_log")]
        from: Option<u64>,
        /// Read through the log (an entry and an fsync on a majority, as a write).
        #[arg(long)]
        via_log: bool,
        /// A lease read (served so only by a leader with `lease_reads` in config.json; see the
        /// README's clock assumption).
        #[arg(long, conflicts_with = "via_log")]
        lease: bool,
        /// Print the value's bytes exactly as stored (no newline, no UTF-8 replacement).
        #[arg(long)]
        raw: bool,
        /// Give up after this long (ms).
        #[arg(long, default_value_t = 10_000)]
        deadline_ms: u64,
    },
    /// Hand leadership over (Raft thesis §3.10) to --to PID, or to the most up-to-date
    /// follower; prints the new leader.
    #[command(after_help = help_tail!("leader transfer --to 2"))]
    Transfer {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The server to hand over to.
        #[arg(long, value_name = "PID")]
        to: Option<u64>,
        /// Give up after this long (ms).
        #[arg(long, default_value_t = 10_000)]
        deadline_ms: u64,
    },
    /// Remove KEY.
    #[command(after_help = help_tail!("leader delete greeting"))]
    Delete {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The key.
        key: String,
        /// Give up after this long (ms).
        #[arg(long, default_value_t = 10_000)]
        deadline_ms: u64,
    },
    /// Compare-and-set: store --new (or delete without it) if KEY holds --expected (or is
    /// absent without it). Exit 1 when it did not swap.
    #[command(after_help = help_tail!("leader cas greeting --expected \"hello world\" --new hi"))]
    Cas {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The key.
        key: String,
        /// The value KEY must hold; omit to require that KEY is absent.
        #[arg(long)]
        expected: Option<String>,
        /// The value to store; omit to delete.
        #[arg(long)]
        new: Option<String>,
        /// Give up after this long (ms).
        #[arg(long, default_value_t = 10_000)]
        deadline_ms: u64,
    },
    /// Benchmark writes, reads or a mix: N concurrent clients against the cluster of the config
    /// (started if not running), or the core alone with --in-memory.
    #[command(after_help = help_tail!("leader bench --clients 256 --duration 10 --workload mixed=90%"))]
    Bench {
        #[command(flatten)]
        args: bench::BenchArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Fuzz the untrusted-input readers (envelope, client request, storage recovery) and the
    /// core (adversarial decodable messages) for a while; a panic, a broken check or a hang
    /// fails.
    #[command(after_help = help_tail!("leader fuzz --target core --seconds 60"))]
    Fuzz {
        /// envelope, client-request, storage, core, or all.
        #[arg(long, default_value = "all")]
        target: String,
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// PRNG seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Deterministic simulation: one seed (--seed S) or a sweep (--seeds A..B); a failure
    /// prints the seed, the property and the last events, and replays from the seed.
    #[command(after_help = help_tail!("leader sim --seeds 1..10001"))]
    Sim(sim::SimArgs),
    /// Ask servers to take a snapshot now (and compact their logs behind it); one line per
    /// server. Exit 1 if any took none.
    #[command(after_help = help_tail!("leader snapshot --pid 1"))]
    Snapshot {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Only server PID (default: every server of the config).
        #[arg(long, value_name = "PID")]
        pid: Option<u64>,
        /// How long to wait for each server's snapshot to be durable, in ms.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Write a backup: a fresh snapshot of the leader (or of --pid), checked, to FILE (durably;
    /// never over an existing file without --force).
    #[command(after_help = help_tail!("leader backup --out cluster.backup"))]
    Backup {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The backup file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Back up server PID instead of the leader.
        #[arg(long, value_name = "PID")]
        pid: Option<u64>,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// How long to wait for the snapshot and for each chunk of it, in ms.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Seed a NEW server's data directory from a backup (run it once per server of a new
    /// cluster); refuses a directory that already holds state.
    #[command(after_help = help_tail!("leader restore cluster.backup --pid 1"))]
    #[command(group(clap::ArgGroup::new("target").required(true).args(["pid", "data_dir"])))]
    Restore {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The backup file (written by `leader backup`).
        file: PathBuf,
        /// Seed server PID's data directory (the config's data_dir/<PID>).
        #[arg(long, value_name = "PID")]
        pid: Option<u64>,
        /// Seed this directory (a server's own directory, as `leader --pid N --data-dir DIR`
        /// uses it); reads no config.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell) on stdout.
    #[command(after_help = help_tail!("leader completions bash > ~/.local/share/bash-completion/completions/leader"))]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Measure failover: start the cluster, stop the leader ROUNDS times (SIGKILL, or SIGTERM
    /// with --mode term), report the time to a new leader and to the first acknowledged write;
    /// or --rolling: restart every server in turn under a write load, report the longest stall.
    #[command(after_help = help_tail!("leader failover --rounds 100 --mode term"))]
    Failover {
        #[command(flatten)]
        args: failover::FailoverArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// The cluster a command reads: its config file and, optionally, its key.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// The cluster's config.json (default: config.json).
    // global: `leader member add … --config FILE` (after the sub-subcommand) works too.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// The cluster key file (default: the config's cluster_key_file, if any): every message is
    /// authenticated with it (see docs/security.md).
    #[arg(long, value_name = "FILE", global = true)]
    pub cluster_key: Option<PathBuf>,
}

impl Cmd {
    /// The cluster this command reads, if it reads one.
    pub fn cluster(&self) -> Option<&ClusterArgs> {
        match self {
            Cmd::Up { cluster, .. }
            | Cmd::Status { cluster, .. }
            | Cmd::Top { cluster, .. }
            | Cmd::Member { cluster, .. }
            | Cmd::Health { cluster, .. }
            | Cmd::Put { cluster, .. }
            | Cmd::Get { cluster, .. }
            | Cmd::Transfer { cluster, .. }
            | Cmd::Delete { cluster, .. }
            | Cmd::Cas { cluster, .. }
            | Cmd::Bench { cluster, .. }
            | Cmd::Snapshot { cluster, .. }
            | Cmd::Backup { cluster, .. }
            | Cmd::Restore { cluster, .. }
            | Cmd::Failover { cluster, .. } => Some(cluster),
            Cmd::Keygen { .. } | Cmd::Fuzz { .. } | Cmd::Sim(_) | Cmd::Completions { .. } => None,
        }
    }

    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Cmd::Up { .. } => "up",
            Cmd::Status { .. } => "status",
            Cmd::Top { .. } => "top",
            Cmd::Member { .. } => "member",
            Cmd::Health { .. } => "health",
            Cmd::Put { .. } => "put",
            Cmd::Get { .. } => "get",
            Cmd::Transfer { .. } => "transfer",
            Cmd::Delete { .. } => "delete",
            Cmd::Cas { .. } => "cas",
            Cmd::Bench { .. } => "bench",
            Cmd::Snapshot { .. } => "snapshot",
            Cmd::Backup { .. } => "backup",
            Cmd::Restore { .. } => "restore",
            Cmd::Failover { .. } => "failover",
            Cmd::Keygen { .. } => "keygen",
            Cmd::Fuzz { .. } => "fuzz",
            Cmd::Sim(_) => "sim",
            Cmd::Completions { .. } => "completions",
        }
    }
}

/// The config file and key a run uses: the command's own `--config`/`--cluster-key`, else the
/// ones given before the command (or with `--pid`), else `config.json` and the config's key.
/// A command that reads no cluster refuses them before its name, so none is silently ignored.
pub fn resolve_cluster(cli: &Cli) -> Result<(PathBuf, Option<PathBuf>), String> {
    let own = cli.command.as_ref().map(Cmd::cluster);
    if let Some(None) = own {
        let name = cli.command.as_ref().map_or("", Cmd::name);
        for (flag, given) in [("--config", cli.config.is_some()), ("--cluster-key", cli.cluster_key.is_some())] {
            if given {
                return Err(format!("`leader {name}` reads no cluster config: {flag} does nothing there"));
            }
        }
    }
    let own = own.flatten().cloned().unwrap_or_default();
    let config = own.config.or_else(|| cli.config.clone()).unwrap_or_else(|| Path::new("config.json").into());
    Ok((config, own.cluster_key.or_else(|| cli.cluster_key.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("leader").chain(args.iter().copied()))
    }

    #[test]
    fn cluster_options_appear_only_on_commands_that_read_a_cluster() {
        let mut command = Cli::command();
        command.build();
        for sub in command.get_subcommands() {
            let reads = !matches!(sub.get_name(), "sim" | "fuzz" | "keygen" | "completions" | "help");
            let has = |long| sub.get_arguments().any(|a| a.get_long() == Some(long));
            assert_eq!(has("config"), reads, "leader {} --config", sub.get_name());
            assert_eq!(has("cluster-key"), reads, "leader {} --cluster-key", sub.get_name());
        }
        for args in [&["sim", "--config", "c.json"][..], &["fuzz", "--cluster-key", "k"], &["keygen", "--config", "c"]]
        {
            assert!(parse(args).is_err(), "{args:?} must be refused");
        }
        let before = parse(&["--config", "c.json", "sim"]).unwrap();
        let refused = resolve_cluster(&before).unwrap_err();
        assert_eq!(refused, "`leader sim` reads no cluster config: --config does nothing there");
    }

    #[test]
    fn the_commands_own_config_wins_then_the_one_before_it_then_config_json() {
        let resolved = |args: &[&str]| resolve_cluster(&parse(args).unwrap()).unwrap();
        assert_eq!(resolved(&["status"]), (PathBuf::from("config.json"), None));
        assert_eq!(resolved(&["status", "--config", "a.json"]).0, PathBuf::from("a.json"));
        assert_eq!(resolved(&["--config", "b.json", "status"]).0, PathBuf::from("b.json"));
        assert_eq!(resolved(&["--config", "b.json", "status", "--config", "a.json"]).0, PathBuf::from("a.json"));
        assert_eq!(resolved(&["put", "k", "v", "--cluster-key", "k.key"]).1, Some(PathBuf::from("k.key")));
        assert_eq!(resolved(&["--pid", "2", "--config", "c.json"]).0, PathBuf::from("c.json"));
    }
}
