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
];

/// The keys a server of `object.Servers` may hold.
pub(super) const SERVER_KEYS: &[&str] = &["mypid", "url", "client_url"];

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
