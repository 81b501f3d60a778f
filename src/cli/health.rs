//! `leader health`: exit 0 only when every server answers, they all follow one leader in one
//! term, and none has applied more than `--max-lag` entries fewer than the leader committed;
//! otherwise exit 1 with one line per problem (what and why), as `etcdctl endpoint health`.

use super::EXIT_FAILURE;
use leader::client::{CallError, Client};
use leader::config::Config;
use leader::core::{NodeId, Role};
use leader::transport::client_wire::Status;
use std::time::Duration;

/// What is wrong with the cluster, from every server's answer; empty when it is healthy.
pub fn problems(answers: &[(NodeId, Result<Status, CallError>)], max_lag: u64) -> Vec<String> {
    let mut out = Vec::new();
    let up: Vec<&Status> = answers.iter().filter_map(|(_, a)| a.as_ref().ok()).collect();
    for (pid, answer) in answers {
        if let Err(e) = answer {
            out.push(format!("server {pid}: {e}"));
        }
    }
    let leaders: Vec<&&Status> = up.iter().filter(|s| s.role == Role::Leader).collect();
    let leader = match leaders.as_slice() {
        [] => {
            out.push(
                "no leader: no server that answered leads (an election is under way, or no majority is up)".into(),
            );
            None
        }
        [one] => Some(**one),
        many => {
            let who: Vec<String> = many.iter().map(|s| format!("{} (term {})", s.pid, s.term)).collect();
            out.push(format!("several servers say they lead: {} (a deposed leader has not heard yet)", who.join(", ")));
            None
        }
    };
    if let Some(leader) = leader {
        for s in up.iter().filter(|s| s.pid != leader.pid) {
            if (s.leader, s.term) != (Some(leader.pid), leader.term) {
                let follows = s.leader.map_or("no leader".to_string(), |l| format!("server {l}"));
                out.push(format!(
                    "server {}: follows {follows} in term {}, not server {} in term {}",
                    s.pid, s.term, leader.pid, leader.term
                ));
            }
            let lag = leader.commit_index.0.saturating_sub(s.last_applied.0);
            if lag > max_lag {
                out.push(format!(
                    "server {}: lags {lag} entries (applied {}, the leader committed {}; --max-lag {max_lag})",
                    s.pid, s.last_applied, leader.commit_index
                ));
            }
        }
    }
    out
}

/// Check the cluster of `config`; print the verdict and every problem.
pub fn run(config: Config, timeout: Duration, max_lag: u64) -> Result<(), i32> {
    let mut client = Client::new(config).with_timeout(timeout);
    let answers = client.status_all();
    let problems = problems(&answers, max_lag);
    if problems.is_empty() {
        let leader = answers.iter().filter_map(|(_, a)| a.as_ref().ok()).find(|s| s.role == Role::Leader);
        let leader = leader.expect("a healthy cluster has a leader");
        println!(
            "healthy: server {} leads term {}, {} of {} servers up and following, commit index {}",
            leader.pid,
            leader.term,
            answers.len(),
            answers.len(),
            leader.commit_index
        );
        return Ok(());
    }
    println!("unhealthy:");
    for p in &problems {
        println!("  {p}");
    }
    Err(EXIT_FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use leader::core::{LogIndex, Term};

    fn status(
        pid: u64,
        role: Role,
        term: u64,
        leader: Option<u64>,
        applied: u64,
    ) -> (NodeId, Result<Status, CallError>) {
        let s = Status {
            pid: NodeId(pid),
            role,
            term: Term(term),
            leader: leader.map(NodeId),
            voted_for: None,
            commit_index: LogIndex(applied),
            last_applied: LogIndex(applied),
            last_index: LogIndex(applied),
        };
        (NodeId(pid), Ok(s))
    }

    #[test]
    fn each_problem_is_named_with_its_reason() {
        let healthy = [
            status(1, Role::Leader, 3, Some(1), 50),
            status(2, Role::Follower, 3, Some(1), 49),
            status(3, Role::Follower, 3, Some(1), 50),
        ];
        assert!(problems(&healthy, 10).is_empty());
        let sick = [
            status(1, Role::Leader, 3, Some(1), 5000),
            (NodeId(2), Err(CallError::Unreachable)),
            status(3, Role::Follower, 2, None, 10),
        ];
        let found = problems(&sick, 1000);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0], "server 2: unreachable");
        assert!(found[1].starts_with("server 3: follows no leader in term 2, not server 1 in term 3"), "{found:?}");
        assert!(found[2].starts_with("server 3: lags 4990 entries"), "{found:?}");
        let leaderless = [status(1, Role::Follower, 4, None, 5), status(2, Role::Candidate, 5, None, 5)];
        assert!(problems(&leaderless, 10)[0].starts_with("no leader"));
    }
}
