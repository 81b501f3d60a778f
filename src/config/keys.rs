//! Which keys config.json may hold: an unknown one is refused with the closest known one.

use super::{Checker, ConfigError};
use serde_json::{Map, Value};

impl Checker<'_> {
    /// A misspelt key would be silently ignored and its default used (`electon_timeout_ms`):
    /// refuse any key not in `known`, naming it, the closest known one, and all of them. No
    /// file of the original's format breaks: it has only `object`, `total`, `Servers`,
    /// `mypid` and `url`.
    pub(super) fn known_keys(&self, obj: &Map<String, Value>, at: &str, known: &[&str]) -> Result<(), ConfigError> {
        let Some(unknown) = obj.keys().find(|k| !known.contains(&k.as_str())) else {
            return Ok(());
        };
        let closest = known.iter().min_by_key(|k| edit_distance(unknown, k)).filter(|k| edit_distance(unknown, k) <= 3);
        let hint = closest.map_or(String::new(), |k| format!(" (did you mean {k}?)"));
        Err(self
            .invalid(format!("{at}{unknown}"), format!("is not a known key{hint}; known keys: {}", known.join(", "))))
    }
}

/// The keys `object` may hold.
pub(super) const OBJECT_KEYS: &[&str] = &[
    "total",
    "Servers",
    "election_timeout_ms",
    "heartbeat_ms",
    "data_dir",
    "cluster_id",
    "cluster_key_file",
    "snapshot_entries",
    "snapshot_bytes",
    "snapshot_trailing_entries",
    "lease_reads",
    "initial_members",
    "promote_lag",
];

/// The keys a server of `object.Servers` may hold.
pub(super) const SERVER_KEYS: &[&str] = &["mypid", "url", "client_url", "metrics_url"];

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// True when binding both rendered endpoints would clash: the same endpoint, or TCP on one port
/// with hosts that name the same interface (`localhost` is `127.0.0.1`) or a wildcard (`*`,
/// `0.0.0.0`, `[::]`) that takes the port on every interface.
pub(super) fn same_bind(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (Some((host_a, port_a)), Some((host_b, port_b))) = (tcp_host_port(a), tcp_host_port(b)) else {
        return false;
    };
    let host = |h: &str| if h.eq_ignore_ascii_case("localhost") { "127.0.0.1".to_string() } else { h.to_lowercase() };
    let wildcard = |h: &str| matches!(h, "*" | "0.0.0.0" | "[::]");
    port_a == port_b && (host(host_a) == host(host_b) || wildcard(host_a) || wildcard(host_b))
}

fn tcp_host_port(endpoint: &str) -> Option<(&str, &str)> {
    endpoint.strip_prefix("tcp://").and_then(|hp| hp.rsplit_once(':'))
}
