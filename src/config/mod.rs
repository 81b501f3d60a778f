//! config.json: load, validate, explain errors.
//!
//! The seed format (`{"object": {"total": N, "Servers": [{"mypid": 1, "url": "host:port"}]}}`)
//! loads unchanged; every addition is optional so that old files keep working. Unknown keys
//! are refused, naming the closest known key: a misspelt `"electon_timeout_ms": 500` silently
//! ignored would run with a timing the operator did not ask for (the cost: a file written for
//! a newer binary does not load in an older one, which says which key it does not know). A
//! known field with the wrong type is an error for the same reason (`"heartbeat_ms": "50"`).
//!
//! The file is parsed into a `serde_json::Value` and walked by hand rather than through serde
//! derives, so that every error can name the exact field path (`object.Servers[2].mypid`), the
//! value found, and what was expected.

use crate::core::NodeId;
use crate::driver::SnapshotPolicy;
use endpoint::{default_client, parse_endpoint, Endpoint};
pub use endpoint::{member_endpoints, parse_metrics_url};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Default election timeout base; the real timeout is randomized in `[base, 2*base)` (§5.2).
const ELECTION_TIMEOUT_MS_DEFAULT: u64 = 200;
/// Below this the timeout is shorter than a scheduler hiccup and elections never settle.
const ELECTION_TIMEOUT_MS_MIN: u64 = 10;
/// Ten minutes: far beyond any useful timeout, and keeps `2 * base` far from overflowing.
const ELECTION_TIMEOUT_MS_MAX: u64 = 600_000;
/// Default leader heartbeat interval: a quarter of the default election timeout.
const HEARTBEAT_MS_DEFAULT: u64 = 50;
/// Default data directory, relative to the directory holding the config file.
const DATA_DIR_DEFAULT: &str = "data";
/// The default client port is the server port plus this offset (7001 -> 8001).
const CLIENT_PORT_OFFSET: u32 = 1000;

/// One server of the cluster, as listed in `object.Servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The server's identity (`mypid`).
    pub pid: NodeId,
    /// The `url` exactly as written in the file (it feeds the default cluster id).
    pub url: String,
    /// ZeroMQ endpoint the server binds for peer traffic and peers connect to,
    /// e.g. `tcp://127.0.0.1:7001`.
    pub endpoint: String,
    /// ZeroMQ endpoint of the server's client (ROUTER) socket: `client_url`, or derived
    /// from `url` when absent (tcp port + 1000, `ipc://PATH.client`, `inproc://NAME.client`).
    pub client_endpoint: String,
    /// `metrics_url` as `host:port`: where the server serves Prometheus metrics over HTTP
    /// (`GET /metrics`). `None`: no metrics endpoint (the default).
    pub metrics_url: Option<String>,
}

/// A validated cluster configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was loaded from (used in error messages).
    pub path: PathBuf,
    /// Every server, sorted by pid, pids unique.
    pub servers: Vec<ServerConfig>,
    /// Election timeout base in milliseconds; the real timeout is randomized in
    /// `[base, 2*base)` (§5.2). Always greater than `heartbeat_ms`.
    pub election_timeout_ms: u64,
    /// Interval at which a leader sends heartbeats, in milliseconds.
    pub heartbeat_ms: u64,
    /// Base data directory, already resolved against the config file's directory. A server's
    /// own files live in `data_dir/<pid>` (see [`Config::data_dir_for`]).
    pub data_dir: PathBuf,
    /// Identifies the cluster in every envelope so that messages from another cluster that
    /// reuses our ports are dropped.
    ///
    /// Default when `object.cluster_id` is absent: the 64-bit FNV-1a hash (offset basis
    /// `0xcbf29ce484222325`, prime `0x100000001b3`, one xor-then-multiply per byte, wrapping)
    /// of the UTF-8 bytes of the canonical string made by sorting the servers by pid and
    /// concatenating `"{pid}={url};"` for each, with `pid` in decimal without leading zeros
    /// and `url` exactly as written in the file (not normalized). For the seed file that is
    /// `"1=127.0.0.1:7001;2=127.0.0.1:7002;3=127.0.0.1:7003;"`.
    pub cluster_id: u64,
    /// `object.cluster_key_file`, resolved against the config file's directory: the shared
    /// key that authenticates every message (docs/security.md). `None`: no authentication.
    pub cluster_key_file: Option<PathBuf>,
    /// When servers take snapshots and compact their logs (§7): `object.snapshot_entries`
    /// (entries applied since the last snapshot, 0 = never by count), `object.snapshot_bytes`
    /// (command bytes applied since, 0 = never by size) and `object.snapshot_trailing_entries`
    /// (entries kept behind a snapshot for followers a little behind). Defaults:
    /// [`SnapshotPolicy::default`].
    pub snapshot: SnapshotPolicy,
    /// `object.lease_reads` (default false): serve `ReadMode::Lease` reads from the leader's
    /// lease (thesis §6.4.1) instead of a round of leadership checks. Safe only under the
    /// clock assumption of [`CLOCK_DRIFT_MAX`](crate::driver::CLOCK_DRIFT_MAX) (README, "Reads").
    pub lease_reads: bool,
    /// `object.initial_members` (default: every server): the pids of the bootstrap membership,
    /// all voters. A server of the file that is not listed starts as a non-member and waits to
    /// be added (`leader member add`); once the log holds a membership, it rules (thesis §4).
    pub initial_members: Vec<NodeId>,
    /// `object.promote_lag` (default 1000): a learner added to be promoted becomes a voter once
    /// its log is within this many entries of the leader's.
    pub promote_lag: u64,
}

/// Why a config file could not be used. Every message starts with the config file's path and
/// names the field, the value found and what was expected.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    Json {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description, without its position suffix.
        message: String,
    },
    /// The JSON is well formed but a field is missing, mistyped or has a bad value.
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Path of the offending field, e.g. `object.Servers[1].url`.
        field: String,
        /// What is wrong, including the value found. A message starting with "is " is shown
        /// as a sentence about the field (`object.total is 4 but ...`), any other after ": ".
        message: String,
    },
    /// A pid was looked up (e.g. `--pid` on the command line) that the file does not list.
    UnknownPid {
        /// The config file.
        path: PathBuf,
        /// The pid asked for.
        pid: NodeId,
        /// The pids the file does list, sorted.
        pids: Vec<NodeId>,
    },
}

impl ConfigError {
    /// Process exit code for a bad config: 2, the conventional "usage error" code, so scripts
    /// can tell it from a runtime failure (1).
    pub fn exit_code(&self) -> i32 {
        2
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, source } => {
                write!(f, "{}: cannot read config file: {source}", path.display())
            }
            ConfigError::Json { path, line, column, message } => {
                write!(f, "{}: invalid JSON at line {line}, column {column}: {message}", path.display())
            }
            ConfigError::Invalid { path, field, message } => {
                // "object.total is 4 but ..." reads better than "object.total: is 4 but ...".
                let sep = if message.starts_with("is ") { " " } else { ": " };
                write!(f, "{}: {field}{sep}{message}", path.display())
            }
            ConfigError::UnknownPid { path, pid, pids } => {
                let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
                write!(f, "{}: pid {pid} is not in object.Servers (pids: {})", path.display(), list.join(", "))
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Config::parse(&text, path)
    }

    /// Validates `text` as config.json; `path` names the file in messages and anchors a
    /// relative `data_dir` (it is not read).
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let root: Value = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;
        Checker { path }.config(&root)
    }

    /// The server with this pid, or an error listing the pids the file does have.
    pub fn server(&self, pid: NodeId) -> Result<&ServerConfig, ConfigError> {
        self.servers.iter().find(|s| s.pid == pid).ok_or_else(|| ConfigError::UnknownPid {
            path: self.path.clone(),
            pid,
            pids: self.pids(),
        })
    }

    /// Every server except `pid`, in pid order: the peers `pid` talks to.
    pub fn peers(&self, pid: NodeId) -> impl Iterator<Item = &ServerConfig> {
        self.servers.iter().filter(move |s| s.pid != pid)
    }

    /// The data directory of one server, `data_dir/<pid>`: one directory per server so that
    /// several servers can share a machine and a base directory.
    pub fn data_dir_for(&self, pid: NodeId) -> PathBuf {
        self.data_dir.join(pid.to_string())
    }

    /// All pids, sorted.
    pub fn pids(&self) -> Vec<NodeId> {
        self.servers.iter().map(|s| s.pid).collect()
    }
}

/// Renders a config file in the original format (`total` and `Servers` with `mypid`/`url`),
/// plus the optional fields given. Tests and tools use it to write configs that [`Config`]
/// reads back. A relative `data_dir` is read back relative to the file's directory; a
/// non-UTF-8 one is written lossily (JSON strings are Unicode).
pub fn render_config(
    servers: &[(u64, String)],
    election_timeout_ms: Option<u64>,
    heartbeat_ms: Option<u64>,
    data_dir: Option<&Path>,
) -> String {
    // Built by hand to keep the original key order; serde_json only quotes the strings.
    let quote = |s: &str| Value::String(s.to_string()).to_string();
    let mut out = format!("{{\"object\": {{\n  \"total\": {},\n", servers.len());
    if let Some(ms) = election_timeout_ms {
        out.push_str(&format!("  \"election_timeout_ms\": {ms},\n"));
    }
    if let Some(ms) = heartbeat_ms {
        out.push_str(&format!("  \"heartbeat_ms\": {ms},\n"));
    }
    if let Some(dir) = data_dir {
        out.push_str(&format!("  \"data_dir\": {},\n", quote(&dir.to_string_lossy())));
    }
    out.push_str("  \"Servers\": [");
    for (i, (pid, url)) in servers.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        out.push_str(&format!("{sep}\n    {{\"mypid\": {pid}, \"url\": {}}}", quote(url)));
    }
    out.push_str("\n  ]\n}}\n");
    out
}

/// 64-bit FNV-1a over `bytes`; see [`Config::cluster_id`] for why and how it is used.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The default cluster id of servers already sorted by pid.
fn default_cluster_id<'a>(servers: impl Iterator<Item = &'a ServerConfig>) -> u64 {
    let canonical: String = servers.map(|s| format!("{}={};", s.pid, s.url)).collect();
    fnv1a_64(canonical.as_bytes())
}

fn json_error(path: &Path, e: &serde_json::Error) -> ConfigError {
    // serde_json appends " at line L column C"; we print the position ourselves.
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    ConfigError::Json { path: path.to_path_buf(), line: e.line(), column: e.column(), message }
}

/// Describes a JSON value for "found ..." in messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => format!("string {v}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// Walks the JSON tree, producing errors that name the config file.
struct Checker<'a> {
    path: &'a Path,
}

impl Checker<'_> {
    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { path: self.path.to_path_buf(), field: field.into(), message: message.into() }
    }

    fn wrong_type(&self, field: &str, expected: &str, found: &Value) -> ConfigError {
        self.invalid(field, format!("expected {expected}, found {}", describe(found)))
    }

    fn required<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
        hint: &str,
    ) -> Result<&'v Value, ConfigError> {
        obj.get(key).ok_or_else(|| self.invalid(field, format!("missing; {hint}")))
    }

    /// An optional non-negative integer field (absent gives `None`, any other type errors).
    fn optional_u64(&self, obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, ConfigError> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(&format!("object.{key}"), "a non-negative integer", v)),
        }
    }

    fn optional_bool(&self, obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ConfigError> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => {
                v.as_bool().map(Some).ok_or_else(|| self.wrong_type(&format!("object.{key}"), "true or false", v))
            }
        }
    }

    fn config(&self, root: &Value) -> Result<Config, ConfigError> {
        const SHAPE: &str = "expected {\"object\": {\"total\": N, \"Servers\": [...]}}";
        let Value::Object(root) = root else {
            return Err(self.wrong_type("(top level)", "an object", root));
        };
        let obj = match self.required(root, "object", "object", SHAPE)? {
            Value::Object(o) => o,
            other => return Err(self.wrong_type("object", "an object", other)),
        };
        self.known_keys(root, "", &["object"])?;
        self.known_keys(obj, "object.", keys::OBJECT_KEYS)?;
        let total_v = self.required(obj, "total", "object.total", "it must give the number of servers")?;
        let total =
            total_v.as_u64().ok_or_else(|| self.wrong_type("object.total", "a non-negative integer", total_v))?;
        let list = match self.required(obj, "Servers", "object.Servers", "list the servers")? {
            Value::Array(a) => a,
            other => return Err(self.wrong_type("object.Servers", "an array of servers", other)),
        };
        if list.is_empty() {
            return Err(self.invalid("object.Servers", "is empty; list at least one server"));
        }
        if total != list.len() as u64 {
            return Err(
                self.invalid("object.total", format!("is {total} but object.Servers lists {} servers", list.len()))
            );
        }
        let mut servers = self.servers(list)?;
        servers.sort_by_key(|s| s.pid);

        let heartbeat_ms = self.optional_u64(obj, "heartbeat_ms")?.unwrap_or(HEARTBEAT_MS_DEFAULT);
        if heartbeat_ms < 1 {
            return Err(self.invalid("object.heartbeat_ms", "0 must be at least 1"));
        }
        let election_timeout_ms = self.optional_u64(obj, "election_timeout_ms")?.unwrap_or(ELECTION_TIMEOUT_MS_DEFAULT);
        let range = ELECTION_TIMEOUT_MS_MIN..=ELECTION_TIMEOUT_MS_MAX;
        if !range.contains(&election_timeout_ms) {
            return Err(self.invalid(
                "object.election_timeout_ms",
                format!(
                    "{election_timeout_ms} is out of range \
                     ({ELECTION_TIMEOUT_MS_MIN}-{ELECTION_TIMEOUT_MS_MAX})"
                ),
            ));
        }
        if election_timeout_ms <= heartbeat_ms {
            // Followers would time out between two heartbeats of a healthy leader (§5.2).
            return Err(self.invalid(
                "object.election_timeout_ms",
                format!(
                    "{election_timeout_ms} must be greater than object.heartbeat_ms \
                     ({heartbeat_ms}), or followers time out between heartbeats"
                ),
            ));
        }
        let data_dir = self.data_dir(obj)?;
        let initial_members = self.initial_members(obj, &servers)?;
        // Over the bootstrap members only, so a file that lists servers to be added later
        // names the same cluster as the one the cluster started from.
        let cluster_id = match self.optional_u64(obj, "cluster_id")? {
            Some(id) => id,
            None => default_cluster_id(servers.iter().filter(|s| initial_members.contains(&s.pid))),
        };
        let cluster_key_file = match obj.get("cluster_key_file") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(self.path.parent().unwrap_or(Path::new("")).join(s)),
            Some(Value::String(_)) => {
                return Err(self.invalid("object.cluster_key_file", "\"\" is empty; omit it for no key"))
            }
            Some(other) => return Err(self.wrong_type("object.cluster_key_file", "a string (a path)", other)),
        };
        let defaults = SnapshotPolicy::default();
        let snapshot = SnapshotPolicy {
            entries: self.optional_u64(obj, "snapshot_entries")?.unwrap_or(defaults.entries),
            bytes: self.optional_u64(obj, "snapshot_bytes")?.unwrap_or(defaults.bytes),
            trailing: self.optional_u64(obj, "snapshot_trailing_entries")?.unwrap_or(defaults.trailing),
        };
        Ok(Config {
            path: self.path.to_path_buf(),
            servers,
            election_timeout_ms,
            heartbeat_ms,
            data_dir,
            cluster_id,
            cluster_key_file,
            snapshot,
            lease_reads: self.optional_bool(obj, "lease_reads")?.unwrap_or(false),
            initial_members,
            promote_lag: self.optional_u64(obj, "promote_lag")?.unwrap_or(1000),
        })
    }

    fn initial_members(&self, obj: &Map<String, Value>, servers: &[ServerConfig]) -> Result<Vec<NodeId>, ConfigError> {
        const FIELD: &str = "object.initial_members";
        let Some(v) = obj.get("initial_members") else {
            return Ok(servers.iter().map(|s| s.pid).collect());
        };
        let Value::Array(list) = v else {
            return Err(self.wrong_type(FIELD, "a list of pids, e.g. [1, 2, 3]", v));
        };
        let mut pids = Vec::new();
        for (i, p) in list.iter().enumerate() {
            let pid = p.as_u64().ok_or_else(|| self.wrong_type(&format!("{FIELD}[{i}]"), "a pid", p))?;
            if !servers.iter().any(|s| s.pid.0 == pid) {
                let known: Vec<u64> = servers.iter().map(|s| s.pid.0).collect();
                return Err(
                    self.invalid(format!("{FIELD}[{i}]"), format!("pid {pid} is not in object.Servers {known:?}"))
                );
            }
            if pids.contains(&NodeId(pid)) {
                return Err(self.invalid(format!("{FIELD}[{i}]"), format!("pid {pid} is listed twice")));
            }
            pids.push(NodeId(pid));
        }
        if pids.is_empty() {
            return Err(self.invalid(FIELD, "[] is empty; a cluster needs at least one member"));
        }
        pids.sort_unstable();
        Ok(pids)
    }

    fn data_dir(&self, obj: &Map<String, Value>) -> Result<PathBuf, ConfigError> {
        let dir = match obj.get("data_dir") {
            None => DATA_DIR_DEFAULT,
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            Some(Value::String(_)) => {
                return Err(self.invalid("object.data_dir", "\"\" is empty; omit it for \"data\""))
            }
            Some(other) => return Err(self.wrong_type("object.data_dir", "a string", other)),
        };
        // Relative to the config file, not the working directory, so that a server finds
        // its data wherever it is started from.
        let base = self.path.parent().unwrap_or(Path::new(""));
        Ok(base.join(dir))
    }

    fn servers(&self, list: &[Value]) -> Result<Vec<ServerConfig>, ConfigError> {
        let mut servers = Vec::with_capacity(list.len());
        let mut pid_index: HashMap<u64, usize> = HashMap::new();
        // Every endpoint any server binds, with the field that asked for it: two binds of one
        // endpoint would fail at start-up, so report it now with both fields named.
        let mut bound: Vec<(String, String)> = Vec::new();
        for (i, v) in list.iter().enumerate() {
            let at = format!("object.Servers[{i}]");
            let Value::Object(obj) = v else {
                return Err(self.wrong_type(&at, "an object like {\"mypid\": 1, \"url\": \"127.0.0.1:7001\"}", v));
            };
            self.known_keys(obj, &format!("{at}."), keys::SERVER_KEYS)?;
            let pid = self.pid(obj, &at)?;
            if let Some(first) = pid_index.insert(pid, i) {
                return Err(self.invalid(
                    format!("{at}.mypid"),
                    format!("{pid} is also the pid of object.Servers[{first}]; pids must be unique"),
                ));
            }
            let (url, endpoint) = self.url(obj, &at)?;
            let client_field = format!("{at}.client_url");
            let client = match obj.get("client_url") {
                None => default_client(&endpoint).map_err(|m| self.invalid(&client_field, m))?,
                Some(v @ Value::String(s)) => {
                    parse_endpoint(s).map_err(|m| self.invalid(&client_field, format!("{v}: {m}")))?
                }
                Some(other) => return Err(self.wrong_type(&client_field, "a string", other)),
            };
            let (endpoint, client_endpoint) = (endpoint.render(), client.render());
            let metrics_url = self.metrics_url(obj, &at)?;
            let metrics = metrics_url.as_ref().map(|m| (format!("{at}.metrics_url"), format!("tcp://{m}")));
            let zmq = [(format!("{at}.url"), endpoint.clone()), (client_field, client_endpoint.clone())];
            for (field, ep) in zmq.into_iter().chain(metrics) {
                if let Some((other, first)) = bound.iter().find(|(b, _)| keys::same_bind(b, &ep)) {
                    let same = if *other == ep { String::new() } else { format!(" (as {other})") };
                    return Err(self.invalid(
                        field,
                        format!("endpoint {ep} is already used by {first}{same}; each must be distinct"),
                    ));
                }
                bound.push((ep, field));
            }
            servers.push(ServerConfig { pid: NodeId(pid), url, endpoint, client_endpoint, metrics_url });
        }
        Ok(servers)
    }

    fn pid(&self, obj: &Map<String, Value>, at: &str) -> Result<u64, ConfigError> {
        let field = format!("{at}.mypid");
        let v = self.required(obj, "mypid", &field, "each server needs \"mypid\" and \"url\"")?;
        match v.as_u64() {
            Some(0) => Err(self.invalid(field, "0: pids are positive integers")),
            Some(pid) => Ok(pid),
            None if v.as_i64().is_some() => Err(self.invalid(field, format!("{v}: pids are positive integers"))),
            None => Err(self.wrong_type(&field, "a positive integer", v)),
        }
    }

    fn url(&self, obj: &Map<String, Value>, at: &str) -> Result<(String, Endpoint), ConfigError> {
        let field = format!("{at}.url");
        let v = self.required(obj, "url", &field, "each server needs \"mypid\" and \"url\"")?;
        let Value::String(url) = v else {
            return Err(self.wrong_type(&field, "a string like \"127.0.0.1:7001\"", v));
        };
        let endpoint = parse_endpoint(url).map_err(|m| self.invalid(&field, format!("{v}: {m}")))?;
        Ok((url.clone(), endpoint))
    }
}

mod endpoint;
mod keys;
mod metrics;
#[cfg(test)]
mod tests;
