//! `leader status`: every server's role, term and leader, as a table or JSON lines.

use super::EXIT_FAILURE;
use leader::client::{CallError, Client};
use leader::config::Config;
use leader::core::NodeId;
use leader::transport::client_wire::Status;
use std::time::Duration;

/// One server's answer as the JSON line `leader status --json` prints; `dropped` holds its
/// counters of dropped and ignored input by reason, when it answered them.
pub fn json_line(pid: NodeId, answer: &Result<Status, CallError>, dropped: Option<&[(String, u64)]>) -> String {
    let value = match answer {
        Ok(s) => serde_json::json!({
            "pid": s.pid.0,
            "state": s.role.as_str(),
            "term": s.term.0,
            "leader": s.leader.map(|l| l.0),
            "voted_for": s.voted_for.map(|v| v.0),
            "commit_index": s.commit_index.0,
            "last_applied": s.last_applied.0,
            "last_index": s.last_index.0,
            "dropped": dropped.map(|d| d.iter().map(|(n, v)| (n.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>()),
        }),
        Err(e) => serde_json::json!({ "pid": pid.0, "error": e.to_string() }),
    };
    value.to_string()
}

fn table(config: &Config, answers: &[(NodeId, Result<Status, CallError>)]) -> String {
    let mut out = format!(
        "{:<5} {:<10} {:>6} {:>6} {:>9} {:>7}  {}\n",
        "PID", "STATE", "TERM", "LEADER", "VOTED_FOR", "COMMIT", "URL"
    );
    for (pid, answer) in answers {
        let url = config.server(*pid).map(|s| s.endpoint.clone()).unwrap_or_default();
        let opt = |v: Option<NodeId>| v.map_or("-".to_string(), |v| v.to_string());
        match answer {
            Ok(s) => {
                out += &format!(
                    "{:<5} {:<10} {:>6} {:>6} {:>9} {:>7}  {url}\n",
                    pid.0,
                    s.role.as_str(),
                    s.term.0,
                    opt(s.leader),
                    opt(s.voted_for),
                    s.commit_index.0
                )
            }
            Err(e) => {
                out +=
                    &format!("{:<5} {:<10} {:>6} {:>6} {:>9} {:>7}  {url}\n", pid.0, e.to_string(), "-", "-", "-", "-")
            }
        }
    }
    out
}

/// Print the status of every server; fails only when no server answers.
pub fn run(config: Config, json: bool, timeout: Duration) -> Result<(), i32> {
    let mut client = Client::new(config).with_timeout(timeout);
    let answers = client.status_all();
    if json {
        for (pid, answer) in &answers {
            let dropped = answer.as_ref().ok().and_then(|_| client.counters(*pid).ok());
            println!("{}", json_line(*pid, answer, dropped.as_deref()));
        }
    } else {
        print!("{}", table(client.config(), &answers));
    }
    if answers.iter().all(|(_, a)| a.is_err()) {
        eprintln!("leader: no server of {} answered", client.config().path.display());
        return Err(EXIT_FAILURE);
    }
    Ok(())
}
