//! config.json: load, validate, explain errors.
//!
//! The seed format (`{"object": {"total": N, "Servers": [{"mypid": 1, "url": "host:port"}]}}`)
//! loads unchanged; every addition is optional so that old files keep working. Unknown fields
//! are ignored (a newer file still loads in an older binary), but a known field with the wrong
//! type is an error: silently ignoring `"heartbeat_ms": "50"` would run with a timing the
//! operator did not ask for.
//!
//! The file is parsed into a `serde_json::Value` and walked by hand rather than through serde
//! derives, so that every error can name the exact field path (`object.Servers[2].mypid`), the
//! value found, and what was expected.

use crate::core::NodeId;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
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
            ConfigError::Json {
                path,
                line,
                column,
                message,
            } => write!(
                f,
                "{}: invalid JSON at line {line}, column {column}: {message}",
                path.display()
            ),
            ConfigError::Invalid {
                path,
                field,
                message,
            } => {
                // "object.total is 4 but ..." reads better than "object.total: is 4 but ...".
                let sep = if message.starts_with("is ") {
                    " "
                } else {
                    ": "
                };
                write!(f, "{}: {field}{sep}{message}", path.display())
            }
            ConfigError::UnknownPid { path, pid, pids } => {
                let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
                write!(
                    f,
                    "{}: pid {pid} is not in object.Servers (pids: {})",
                    path.display(),
                    list.join(", ")
                )
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
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
        self.servers
            .iter()
            .find(|s| s.pid == pid)
            .ok_or_else(|| ConfigError::UnknownPid {
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
        out.push_str(&format!(
            "  \"data_dir\": {},\n",
            quote(&dir.to_string_lossy())
        ));
    }
    out.push_str("  \"Servers\": [");
    for (i, (pid, url)) in servers.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        out.push_str(&format!(
            "{sep}\n    {{\"mypid\": {pid}, \"url\": {}}}",
            quote(url)
        ));
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
fn default_cluster_id(servers: &[ServerConfig]) -> u64 {
    let canonical: String = servers
        .iter()
        .map(|s| format!("{}={};", s.pid, s.url))
        .collect();
    fnv1a_64(canonical.as_bytes())
}

fn json_error(path: &Path, e: &serde_json::Error) -> ConfigError {
    // serde_json appends " at line L column C"; we print the position ourselves.
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    ConfigError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message,
    }
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

/// A parsed `url` or `client_url`.
enum Endpoint {
    /// `tcp://host:port`; `host` as written (IPv6 keeps its brackets).
    Tcp { host: String, port: u16 },
    /// `ipc://path`.
    Ipc(String),
    /// `inproc://name`.
    Inproc(String),
}

impl Endpoint {
    fn render(&self) -> String {
        match self {
            Endpoint::Tcp { host, port } => format!("tcp://{host}:{port}"),
            Endpoint::Ipc(p) => format!("ipc://{p}"),
            Endpoint::Inproc(n) => format!("inproc://{n}"),
        }
    }
}

/// Parses `host:port`, `tcp://host:port`, `ipc://path` or `inproc://name`; the error says
/// what is wrong without the field name or value (the caller adds them).
fn parse_endpoint(url: &str) -> Result<Endpoint, String> {
    let hostport = if let Some(rest) = url.strip_prefix("tcp://") {
        rest
    } else if let Some(path) = url.strip_prefix("ipc://") {
        if path.is_empty() {
            return Err("ipc:// needs a path, e.g. ipc:///tmp/leader-1.sock".to_string());
        }
        return Ok(Endpoint::Ipc(path.to_string()));
    } else if let Some(name) = url.strip_prefix("inproc://") {
        if name.is_empty() {
            return Err("inproc:// needs a name, e.g. inproc://server-1".to_string());
        }
        return Ok(Endpoint::Inproc(name.to_string()));
    } else if let Some((scheme, _)) = url.split_once("://") {
        return Err(format!(
            "unsupported transport \"{scheme}\" (expected host:port, tcp://host:port, \
             ipc://path or inproc://name)"
        ));
    } else {
        url
    };
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return Err(
            "expected host:port (e.g. 127.0.0.1:7001), tcp://host:port, ipc://path \
                    or inproc://name"
                .to_string(),
        );
    };
    check_host(host)?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "port \"{port}\" is not a number (expected 1-65535)"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p >= 1 => Ok(Endpoint::Tcp {
            host: host.to_string(),
            port: p,
        }),
        _ => Err(format!("port {port} is out of range (1-65535)")),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty (expected e.g. 127.0.0.1:7001)".to_string());
    }
    if host == "*" {
        return Ok(()); // bind to every interface
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<Ipv6Addr>().is_ok());
        return if ok {
            Ok(())
        } else {
            Err(format!("host {host} is not a valid IPv6 address"))
        };
    }
    if host.contains(':') {
        return Err(format!(
            "IPv6 host {host} must be in brackets, e.g. [::1]:7001"
        ));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("host {host} is not a valid IPv4 address")),
        };
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(format!(
            "host \"{host}\" is not a valid hostname (letters, digits, '.', '-')"
        ));
    }
    Ok(())
}

/// The client endpoint used when `client_url` is absent.
fn default_client(endpoint: &Endpoint) -> Result<Endpoint, String> {
    Ok(match endpoint {
        Endpoint::Tcp { host, port } => {
            let client = u32::from(*port) + CLIENT_PORT_OFFSET;
            let port = u16::try_from(client).map_err(|_| {
                format!(
                    "absent, and the default (url port {port} + {CLIENT_PORT_OFFSET} = \
                     {client}) would be out of range (1-65535); set client_url explicitly"
                )
            })?;
            Endpoint::Tcp {
                host: host.clone(),
                port,
            }
        }
        Endpoint::Ipc(p) => Endpoint::Ipc(format!("{p}.client")),
        Endpoint::Inproc(n) => Endpoint::Inproc(format!("{n}.client")),
    })
}

/// Walks the JSON tree, producing errors that name the config file.
struct Checker<'a> {
    path: &'a Path,
}

impl Checker<'_> {
    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn wrong_type(&self, field: &str, expected: &str, found: &Value) -> ConfigError {
        self.invalid(
            field,
            format!("expected {expected}, found {}", describe(found)),
        )
    }

    fn required<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
        hint: &str,
    ) -> Result<&'v Value, ConfigError> {
        obj.get(key)
            .ok_or_else(|| self.invalid(field, format!("missing; {hint}")))
    }

    /// An optional non-negative integer field (absent gives `None`, any other type errors).
    fn optional_u64(
        &self,
        obj: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<u64>, ConfigError> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                self.wrong_type(&format!("object.{key}"), "a non-negative integer", v)
            }),
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
        let total_v = self.required(
            obj,
            "total",
            "object.total",
            "it must give the number of servers",
        )?;
        let total = total_v
            .as_u64()
            .ok_or_else(|| self.wrong_type("object.total", "a non-negative integer", total_v))?;
        let list = match self.required(obj, "Servers", "object.Servers", "list the servers")? {
            Value::Array(a) => a,
            other => return Err(self.wrong_type("object.Servers", "an array of servers", other)),
        };
        if list.is_empty() {
            return Err(self.invalid("object.Servers", "is empty; list at least one server"));
        }
        if total != list.len() as u64 {
            return Err(self.invalid(
                "object.total",
                format!("is {total} but object.Servers lists {} servers", list.len()),
            ));
        }
        let mut servers = self.servers(list)?;
        servers.sort_by_key(|s| s.pid);

        let heartbeat_ms = self
            .optional_u64(obj, "heartbeat_ms")?
            .unwrap_or(HEARTBEAT_MS_DEFAULT);
        if heartbeat_ms < 1 {
            return Err(self.invalid("object.heartbeat_ms", "0 must be at least 1"));
        }
        let election_timeout_ms = self
            .optional_u64(obj, "election_timeout_ms")?
            .unwrap_or(ELECTION_TIMEOUT_MS_DEFAULT);
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
        let cluster_id = match self.optional_u64(obj, "cluster_id")? {
            Some(id) => id,
            None => default_cluster_id(&servers),
        };
        Ok(Config {
            path: self.path.to_path_buf(),
            servers,
            election_timeout_ms,
            heartbeat_ms,
            data_dir,
            cluster_id,
        })
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
        let mut bound: HashMap<String, String> = HashMap::new();
        for (i, v) in list.iter().enumerate() {
            let at = format!("object.Servers[{i}]");
            let Value::Object(obj) = v else {
                return Err(self.wrong_type(
                    &at,
                    "an object like {\"mypid\": 1, \"url\": \"127.0.0.1:7001\"}",
                    v,
                ));
            };
            let pid = self.pid(obj, &at)?;
            if let Some(first) = pid_index.insert(pid, i) {
                return Err(self.invalid(
                    format!("{at}.mypid"),
                    format!(
                        "{pid} is also the pid of object.Servers[{first}]; pids must be unique"
                    ),
                ));
            }
            let (url, endpoint) = self.url(obj, &at)?;
            let client_field = format!("{at}.client_url");
            let client = match obj.get("client_url") {
                None => default_client(&endpoint).map_err(|m| self.invalid(&client_field, m))?,
                Some(v @ Value::String(s)) => parse_endpoint(s)
                    .map_err(|m| self.invalid(&client_field, format!("{v}: {m}")))?,
                Some(other) => return Err(self.wrong_type(&client_field, "a string", other)),
            };
            let (endpoint, client_endpoint) = (endpoint.render(), client.render());
            for (field, ep) in [
                (format!("{at}.url"), &endpoint),
                (client_field, &client_endpoint),
            ] {
                if let Some(first) = bound.get(ep) {
                    return Err(self.invalid(
                        field,
                        format!("endpoint {ep} is already used by {first}; each must be distinct"),
                    ));
                }
                bound.insert(ep.clone(), field);
            }
            servers.push(ServerConfig {
                pid: NodeId(pid),
                url,
                endpoint,
                client_endpoint,
            });
        }
        Ok(servers)
    }

    fn pid(&self, obj: &Map<String, Value>, at: &str) -> Result<u64, ConfigError> {
        let field = format!("{at}.mypid");
        let v = self.required(
            obj,
            "mypid",
            &field,
            "each server needs \"mypid\" and \"url\"",
        )?;
        match v.as_u64() {
            Some(0) => Err(self.invalid(field, "0: pids are positive integers")),
            Some(pid) => Ok(pid),
            None if v.as_i64().is_some() => {
                Err(self.invalid(field, format!("{v}: pids are positive integers")))
            }
            None => Err(self.wrong_type(&field, "a positive integer", v)),
        }
    }

    fn url(&self, obj: &Map<String, Value>, at: &str) -> Result<(String, Endpoint), ConfigError> {
        let field = format!("{at}.url");
        let v = self.required(
            obj,
            "url",
            &field,
            "each server needs \"mypid\" and \"url\"",
        )?;
        let Value::String(url) = v else {
            return Err(self.wrong_type(&field, "a string like \"127.0.0.1:7001\"", v));
        };
        let endpoint =
            parse_endpoint(url).map_err(|m| self.invalid(&field, format!("{v}: {m}")))?;
        Ok((url.clone(), endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"object": {"total": 3, "Servers": [
  {"mypid": 1, "url": "127.0.0.1:7001"},
  {"mypid": 2, "url": "127.0.0.1:7002"},
  {"mypid": 3, "url": "127.0.0.1:7003"}]}}"#;

    /// A config whose `Servers` are the given object bodies, with `extra` fields in `object`.
    fn with(extra: &str, servers: &[&str]) -> String {
        let list: Vec<String> = servers.iter().map(|s| format!("{{{s}}}")).collect();
        let n = servers.len();
        format!(
            r#"{{"object": {{{extra} "total": {n}, "Servers": [{}]}}}}"#,
            list.join(",")
        )
    }

    fn parse(text: &str) -> Config {
        Config::parse(text, "config.json").unwrap()
    }

    /// Asserts that `text` is rejected with exit code 2 and a message containing every part.
    fn rejects(text: &str, parts: &[&str]) {
        let e = Config::parse(text, "config.json").expect_err("config should be rejected");
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.starts_with("config.json: "), "{msg}");
        for p in parts {
            assert!(msg.contains(p), "{msg:?} should contain {p:?}");
        }
    }

    #[test]
    fn seed_format_loads_unchanged_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, SEED).unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.path, path);
        assert_eq!(c.pids(), vec![NodeId(1), NodeId(2), NodeId(3)]);
        let s = c.server(NodeId(1)).unwrap();
        assert_eq!(s.url, "127.0.0.1:7001");
        assert_eq!(s.endpoint, "tcp://127.0.0.1:7001");
        assert_eq!(s.client_endpoint, "tcp://127.0.0.1:8001");
        assert_eq!(c.servers[2].client_endpoint, "tcp://127.0.0.1:8003");
        assert_eq!((c.election_timeout_ms, c.heartbeat_ms), (200, 50));
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(c.data_dir_for(NodeId(2)), dir.path().join("data/2"));
        let peers: Vec<NodeId> = c.peers(NodeId(2)).map(|s| s.pid).collect();
        assert_eq!(peers, vec![NodeId(1), NodeId(3)]);
        let canonical = "1=127.0.0.1:7001;2=127.0.0.1:7002;3=127.0.0.1:7003;";
        assert_eq!(c.cluster_id, fnv1a_64(canonical.as_bytes()));
    }

    #[test]
    fn servers_are_sorted_and_optional_fields_apply() {
        let extra = r#""election_timeout_ms": 300, "heartbeat_ms": 30, "data_dir": "/var/x",
                       "cluster_id": 42, "future_field": {"a": 1},"#;
        let servers = [
            r#""mypid": 7, "url": "tcp://h-2.example:9000""#,
            r#""mypid": 2, "url": "[::1]:9001""#,
        ];
        let c = Config::parse(&with(extra, &servers), "/etc/leader/config.json").unwrap();
        assert_eq!(c.pids(), vec![NodeId(2), NodeId(7)]);
        assert_eq!(c.servers[0].endpoint, "tcp://[::1]:9001");
        assert_eq!(c.servers[1].client_endpoint, "tcp://h-2.example:10000");
        assert_eq!((c.election_timeout_ms, c.heartbeat_ms), (300, 30));
        assert_eq!((c.data_dir, c.cluster_id), (PathBuf::from("/var/x"), 42));
        let rel = with(r#""data_dir": "d","#, &[r#""mypid": 1, "url": "*:7001""#]);
        let c = Config::parse(&rel, "/etc/leader/c.json").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/leader/d"));
    }

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn cluster_id_is_stable_and_follows_urls() {
        let id = parse(SEED).cluster_id;
        let reordered = with(
            "",
            &[
                r#""mypid": 3, "url": "127.0.0.1:7003""#,
                r#""mypid": 1, "url": "127.0.0.1:7001""#,
                r#""mypid": 2, "url": "127.0.0.1:7002""#,
            ],
        );
        assert_eq!(parse(&reordered).cluster_id, id);
        assert_ne!(parse(&SEED.replace("7003", "7004")).cluster_id, id);
    }

    #[test]
    fn unreadable_file_names_path_and_os_error() {
        let e = Config::load("/nonexistent/dir/config.json").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.starts_with("/nonexistent/dir/config.json: cannot read"),
            "{msg}"
        );
        assert!(msg.contains("No such file or directory"), "{msg}");
    }

    #[test]
    fn bad_json_gives_line_and_column() {
        rejects(
            "{\"object\": {\n  \"total\": 3,,\n}}",
            &["invalid JSON at line 2, column 14"],
        );
    }

    #[test]
    fn missing_or_mistyped_object() {
        rejects(r#"{"Servers": []}"#, &["config.json: object: missing"]);
        rejects(
            r#"{"object": [1]}"#,
            &["object: expected an object, found an array"],
        );
        rejects("[]", &["(top level): expected an object"]);
    }

    #[test]
    fn missing_or_mistyped_total() {
        let one = r#"[{"mypid": 1, "url": "a:1"}]"#;
        rejects(
            &format!(r#"{{"object": {{"Servers": {one}}}}}"#),
            &["object.total: missing"],
        );
        rejects(
            &format!(r#"{{"object": {{"total": "1", "Servers": {one}}}}}"#),
            &[r#"object.total: expected a non-negative integer, found string "1""#],
        );
    }

    #[test]
    fn missing_or_mistyped_servers() {
        rejects(r#"{"object": {"total": 1}}"#, &["object.Servers: missing"]);
        rejects(
            r#"{"object": {"total": 1, "Servers": {}}}"#,
            &["object.Servers: expected an array"],
        );
        rejects(
            r#"{"object": {"total": 1, "Servers": [5]}}"#,
            &["object.Servers[0]: expected an object", "number 5"],
        );
    }

    #[test]
    fn empty_servers_rejected() {
        rejects(
            r#"{"object": {"total": 0, "Servers": []}}"#,
            &["object.Servers is empty"],
        );
    }

    #[test]
    fn total_must_match_server_count() {
        let text = SEED.replace("\"total\": 3", "\"total\": 4");
        rejects(
            &text,
            &["object.total is 4 but object.Servers lists 3 servers"],
        );
    }

    #[test]
    fn missing_or_mistyped_mypid() {
        rejects(
            &with("", &[r#""mypid": 1, "url": "a:1""#, r#""url": "a:2""#]),
            &["object.Servers[1].mypid: missing"],
        );
        let want = r#"object.Servers[0].mypid: expected a positive integer, found string "1""#;
        rejects(&with("", &[r#""mypid": "1", "url": "a:1""#]), &[want]);
        rejects(
            &with("", &[r#""mypid": 1.5, "url": "a:1""#]),
            &["found number 1.5"],
        );
    }

    #[test]
    fn pid_must_be_positive() {
        let want = "object.Servers[0].mypid: 0: pids are positive integers";
        rejects(&with("", &[r#""mypid": 0, "url": "a:1""#]), &[want]);
        let want = "object.Servers[0].mypid: -3: pids are positive integers";
        rejects(&with("", &[r#""mypid": -3, "url": "a:1""#]), &[want]);
    }

    #[test]
    fn duplicate_pid_names_both_indices() {
        let servers = [
            r#""mypid": 1, "url": "a:1""#,
            r#""mypid": 2, "url": "a:2""#,
            r#""mypid": 1, "url": "a:3""#,
        ];
        rejects(
            &with("", &servers),
            &["object.Servers[2].mypid: 1 is also the pid of object.Servers[0]"],
        );
    }

    #[test]
    fn missing_or_mistyped_url() {
        rejects(
            &with("", &[r#""mypid": 1"#]),
            &["object.Servers[0].url: missing"],
        );
        let want = [
            "object.Servers[0].url: expected a string",
            "found number 7001",
        ];
        rejects(&with("", &[r#""mypid": 1, "url": 7001"#]), &want);
    }

    #[test]
    fn original_readme_ports_are_out_of_range() {
        let text = r#"{"object": {"total": 2, "Servers": [
            {"mypid": 1, "url": "127.0.0.1:100001"}, {"mypid": 2, "url": "127.0.0.1:100002"}]}}"#;
        let e = Config::parse(text, "config.json").unwrap_err();
        let want = "config.json: object.Servers[0].url: \"127.0.0.1:100001\": \
                    port 100001 is out of range (1-65535)";
        assert_eq!(e.to_string(), want);
    }

    #[test]
    fn malformed_urls_are_explained() {
        let cases = [
            ("127.0.0.1", "expected host:port"),
            ("127.0.0.1:0", "port 0 is out of range (1-65535)"),
            (
                "localhost:65536",
                r#""localhost:65536": port 65536 is out of range (1-65535)"#,
            ),
            ("127.0.0.1:http", r#"port "http" is not a number"#),
            ("127.0.0.1:", "is not a number"),
            (":7001", "the host is empty"),
            (
                "300.1.1.1:7001",
                "host 300.1.1.1 is not a valid IPv4 address",
            ),
            ("::1:7001", "must be in brackets"),
            ("[::g]:7001", "not a valid IPv6 address"),
            ("my_host:7001", "not a valid hostname"),
            ("udp://a:1", r#"unsupported transport "udp""#),
            ("ipc://", "ipc:// needs a path"),
            ("inproc://", "inproc:// needs a name"),
        ];
        for (url, why) in cases {
            let text = with("", &[&format!(r#""mypid": 1, "url": "{url}""#)]);
            rejects(&text, &["object.Servers[0].url: ", why]);
        }
    }

    #[test]
    fn ipc_and_inproc_urls_get_suffixed_client_endpoints() {
        let c = parse(&with(
            "",
            &[
                r#""mypid": 1, "url": "ipc:///tmp/leader-1.sock""#,
                r#""mypid": 2, "url": "inproc://n2""#,
            ],
        ));
        assert_eq!(c.servers[0].endpoint, "ipc:///tmp/leader-1.sock");
        assert_eq!(
            c.servers[0].client_endpoint,
            "ipc:///tmp/leader-1.sock.client"
        );
        assert_eq!(c.servers[1].endpoint, "inproc://n2");
        assert_eq!(c.servers[1].client_endpoint, "inproc://n2.client");
    }

    #[test]
    fn explicit_client_url_is_honored_and_checked() {
        let c = parse(&with(
            "",
            &[r#""mypid": 1, "url": "a:7001", "client_url": "0.0.0.0:9999""#],
        ));
        assert_eq!(c.servers[0].client_endpoint, "tcp://0.0.0.0:9999");
        let bad = with(
            "",
            &[r#""mypid": 1, "url": "a:1", "client_url": "a:99999""#],
        );
        rejects(
            &bad,
            &[r#"object.Servers[0].client_url: "a:99999": port 99999 is out of range"#],
        );
        let bad = with("", &[r#""mypid": 1, "url": "a:1", "client_url": 8001"#]);
        rejects(
            &bad,
            &["object.Servers[0].client_url: expected a string, found number 8001"],
        );
    }

    #[test]
    fn default_client_port_out_of_range_asks_for_client_url() {
        let text = with("", &[r#""mypid": 1, "url": "127.0.0.1:65000""#]);
        let want = [
            "object.Servers[0].client_url: ",
            "66000",
            "out of range",
            "set client_url explicitly",
        ];
        rejects(&text, &want);
        let ok = with(
            "",
            &[r#""mypid": 1, "url": "127.0.0.1:65000", "client_url": "127.0.0.1:64000""#],
        );
        assert_eq!(
            parse(&ok).servers[0].client_endpoint,
            "tcp://127.0.0.1:64000"
        );
    }

    #[test]
    fn duplicate_url_is_a_bind_conflict() {
        let servers = [
            r#""mypid": 1, "url": "127.0.0.1:7001""#,
            r#""mypid": 2, "url": "tcp://127.0.0.1:7001""#,
        ];
        let want = "object.Servers[1].url: endpoint tcp://127.0.0.1:7001 is already used by \
                    object.Servers[0].url";
        rejects(&with("", &servers), &[want]);
    }

    #[test]
    fn duplicate_client_endpoint_is_a_bind_conflict() {
        // Server 2's default client endpoint (port 8001) is server 1's explicit one.
        let servers = [
            r#""mypid": 1, "url": "h:7000", "client_url": "h:8001""#,
            r#""mypid": 2, "url": "h:7001""#,
        ];
        let want = "object.Servers[1].client_url: endpoint tcp://h:8001 is already used by \
                    object.Servers[0].client_url";
        rejects(&with("", &servers), &[want]);
        // A client endpoint on another server's peer endpoint conflicts too.
        let servers = [
            r#""mypid": 1, "url": "h:7000", "client_url": "h:7001""#,
            r#""mypid": 2, "url": "h:7001""#,
        ];
        let want = "object.Servers[1].url: endpoint tcp://h:7001 is already used by \
                    object.Servers[0].client_url";
        rejects(&with("", &servers), &[want]);
    }

    #[test]
    fn unknown_pid_lists_the_known_ones() {
        let e = parse(SEED).server(NodeId(9)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "config.json: pid 9 is not in object.Servers (pids: 1, 2, 3)"
        );
    }

    #[test]
    fn optional_fields_are_validated() {
        let cases = [
            (
                r#""heartbeat_ms": 0,"#,
                "object.heartbeat_ms: 0 must be at least 1",
            ),
            (
                r#""election_timeout_ms": 9,"#,
                "object.election_timeout_ms: 9 is out of range (10-600000)",
            ),
            (
                r#""election_timeout_ms": 50,"#,
                "object.election_timeout_ms: 50 must be greater than object.heartbeat_ms (50)",
            ),
            (
                r#""heartbeat_ms": "50","#,
                r#"object.heartbeat_ms: expected a non-negative integer, found string "50""#,
            ),
            (
                r#""election_timeout_ms": -1,"#,
                "object.election_timeout_ms: expected a non-negative integer, found number -1",
            ),
            (
                r#""cluster_id": null,"#,
                "object.cluster_id: expected a non-negative integer, found null",
            ),
            (
                r#""data_dir": 3,"#,
                "object.data_dir: expected a string, found number 3",
            ),
            (r#""data_dir": "","#, r#"object.data_dir: "" is empty"#),
        ];
        for (extra, want) in cases {
            rejects(&with(extra, &[r#""mypid": 1, "url": "a:1""#]), &[want]);
        }
    }

    #[test]
    fn render_config_parses_back() {
        let servers = [
            (2, "127.0.0.1:7102".to_string()),
            (1, r#"ipc:///tmp/a "b""#.to_string()),
        ];
        let text = render_config(&servers, Some(400), Some(40), Some(Path::new("/tmp/d")));
        let c = Config::parse(&text, "x/config.json").unwrap();
        assert_eq!(c.pids(), vec![NodeId(1), NodeId(2)]);
        assert_eq!(c.servers[0].url, r#"ipc:///tmp/a "b""#);
        assert_eq!(c.servers[1].endpoint, "tcp://127.0.0.1:7102");
        assert_eq!((c.election_timeout_ms, c.heartbeat_ms), (400, 40));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/d"));
        let c = parse(&render_config(&servers[..1], None, None, None));
        assert_eq!(
            (c.election_timeout_ms, c.data_dir),
            (200, PathBuf::from("data"))
        );
    }
}
