//! The optional metrics endpoint of each server: `object.Servers[i].metrics_url` in the file,
//! or `--metrics ADDR` (`NodeOptions::metrics_url`) for one server, which overrides it.

use super::{endpoint::parse_metrics_url, keys, Checker, Config, ConfigError};
use crate::core::NodeId;
use serde_json::{Map, Value};

impl Checker<'_> {
    /// `metrics_url` of one server entry: absent (no endpoint), or `host:port` /
    /// `http://host:port`, returned as `host:port`.
    pub(super) fn metrics_url(&self, obj: &Map<String, Value>, at: &str) -> Result<Option<String>, ConfigError> {
        let field = format!("{at}.metrics_url");
        match obj.get("metrics_url") {
            None => Ok(None),
            Some(v @ Value::String(s)) => {
                parse_metrics_url(s).map(Some).map_err(|m| self.invalid(&field, format!("{v}: {m}")))
            }
            Some(other) => Err(self.wrong_type(&field, "a string like \"127.0.0.1:9101\"", other)),
        }
    }
}

impl Config {
    /// Where server `pid` serves metrics: `given` (the `--metrics` flag; it overrides the
    /// file) or the file's `metrics_url`, as `host:port`; `None`: no metrics endpoint. A given
    /// address is checked like the file's: its form, and that no other endpoint of the cluster
    /// (any server's `url`, `client_url` or another server's `metrics_url`) takes its port —
    /// two binds of one port would fail, or worse, both succeed on different interfaces.
    pub fn metrics_url_for(&self, pid: NodeId, given: Option<&str>) -> Result<Option<String>, ConfigError> {
        let invalid =
            |message: String| ConfigError::Invalid { path: self.path.clone(), field: "--metrics".into(), message };
        let from_file = self.server(pid)?.metrics_url.clone();
        let Some(given) = given else {
            return Ok(from_file);
        };
        let addr = parse_metrics_url(given).map_err(|m| invalid(format!("\"{given}\": {m}")))?;
        let mine = format!("tcp://{addr}");
        // (`servers` is sorted by pid, not in the file's order: name servers by pid.)
        for s in &self.servers {
            let metrics =
                s.metrics_url.as_ref().filter(|_| s.pid != pid).map(|m| ("metrics_url", format!("tcp://{m}")));
            let others = [("url", s.endpoint.clone()), ("client_url", s.client_endpoint.clone())];
            for (key, ep) in others.into_iter().chain(metrics) {
                if keys::same_bind(&ep, &mine) {
                    return Err(invalid(format!(
                        "endpoint {mine} is already used by the {key} of server {} (as {ep}); each must be distinct",
                        s.pid
                    )));
                }
            }
        }
        Ok(Some(addr))
    }
}
