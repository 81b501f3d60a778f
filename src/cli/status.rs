//! `leader status`: every server's role, term, leader and OS pid, as a table or JSON lines;
//! `--verbose` adds why each server is where it is (its vote decisions with reasons, its last
//! contact with each peer, its counters), `--health` the verdict of `leader health`.

use super::{health, EXIT_FAILURE};
use leader::client::{CallError, Client};
use leader::config::Config;
use leader::core::{MemberRole, NodeId, Role};
use leader::transport::client_wire::{ClientError, Inspection, Status};
use std::collections::BTreeMap;
use std::time::Duration;

/// What `leader status` prints.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// JSON lines instead of a table.
    pub json: bool,
    /// Vote decisions, last contact and counters after the table.
    pub verbose: bool,
    /// Also judge health (`leader health`'s checks) with this `--max-lag`; exit 1 if unhealthy.
    pub health: Option<u64>,
    /// Per-server answer timeout.
    pub timeout: Duration,
}

/// One server's answer: its inspection, or only its status (a server that does not serve
/// `Inspect`, e.g. examples/python/peer.py before it did), or why it did not answer.
pub type Answer = Result<(Status, Option<Inspection>), CallError>;

/// Ask every server, inspections first, falling back to a plain status request.
pub fn gather(client: &mut Client) -> Vec<(NodeId, Answer)> {
    let inspections = client.inspect_all();
    inspections
        .into_iter()
        .map(|(pid, answer)| {
            let answer = match answer {
                Ok(i) => Ok((i.status, Some(i))),
                Err(CallError::Refused(ClientError::BadRequest(_))) => client.status(pid).map(|s| (s, None)),
                Err(e) => Err(e),
            };
            (pid, answer)
        })
        .collect()
}

/// What each answering server is in its own membership (thesis §4): `voter`, `learner` or
/// `non-member` (not added yet, or removed); absent for servers that do not serve `Membership`.
pub fn member_roles(client: &mut Client, answers: &[(NodeId, Answer)]) -> BTreeMap<NodeId, &'static str> {
    let mut roles = BTreeMap::new();
    for (pid, answer) in answers {
        if answer.is_err() {
            continue;
        }
        if let Ok(info) = client.membership(*pid) {
            let role = match info.members.iter().find(|m| m.pid == *pid).map(|m| m.role) {
                Some(MemberRole::Voter) => "voter",
                Some(MemberRole::Learner { .. }) => "learner",
                None => "non-member",
            };
            roles.insert(*pid, role);
        }
    }
    roles
}

/// The statuses alone, as `leader health` judges them.
pub fn statuses(answers: &[(NodeId, Answer)]) -> Vec<(NodeId, Result<Status, CallError>)> {
    answers.iter().map(|(pid, a)| (*pid, a.as_ref().map(|(s, _)| *s).map_err(Clone::clone))).collect()
}

/// One server's answer as the JSON line `leader status --json` prints. `dropped` holds its
/// counters of dropped and ignored input by name, when it answered them.
pub fn json_line(pid: NodeId, answer: &Answer, member: Option<&str>) -> String {
    let value = match answer {
        Ok((s, inspection)) => {
            let mut v = serde_json::json!({
                "pid": s.pid.0,
                "state": s.role.as_str(),
                "term": s.term.0,
                "leader": s.leader.map(|l| l.0),
                "voted_for": s.voted_for.map(|v| v.0),
                "commit_index": s.commit_index.0,
                "last_applied": s.last_applied.0,
                "last_index": s.last_index.0,
            });
            if let Some(member) = member {
                v["member"] = member.into();
            }
            if let Some(i) = inspection {
                let votes: Vec<_> = i
                    .votes
                    .iter()
                    .map(|v| {
                        serde_json::json!({
                            "candidate": v.candidate.0,
                            "term": v.term.0,
                            "kind": format!("{:?}", v.kind),
                            "granted": v.verdict == leader::core::VoteVerdict::Granted,
                            "reason": v.verdict.describe(),
                            "ms_ago": v.ms_ago,
                        })
                    })
                    .collect();
                let contact: serde_json::Map<_, _> =
                    i.last_contact.iter().map(|c| (c.pid.0.to_string(), serde_json::json!(c.ms_ago))).collect();
                let dropped: serde_json::Map<_, _> =
                    i.counters.iter().map(|c| (c.name.clone(), serde_json::json!(c.value))).collect();
                let extra = serde_json::json!({
                    "os_pid": i.os_pid,
                    "uptime_ms": i.uptime_ms,
                    "elections_started": i.elections_started,
                    "elections_won": i.elections_won,
                    "votes": votes,
                    "last_contact_ms": contact,
                    "dropped": dropped,
                });
                v.as_object_mut().expect("an object").extend(extra.as_object().expect("an object").clone());
            }
            v
        }
        Err(e) => serde_json::json!({ "pid": pid.0, "error": e.to_string() }),
    };
    value.to_string()
}

fn table(config: &Config, answers: &[(NodeId, Answer)], members: &BTreeMap<NodeId, &'static str>) -> String {
    let row = |cells: [&str; 8], url: &str| {
        format!(
            "{:<5} {:>7} {:<10} {:>6} {:>6} {:>9} {:>7} {:>7}  {url}\n",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7]
        )
    };
    let mut out = row(["PID", "OS_PID", "STATE", "TERM", "LEADER", "VOTED_FOR", "COMMIT", "APPLIED"], "URL");
    for (pid, answer) in answers {
        let url = config.server(*pid).map(|s| s.endpoint.clone()).unwrap_or_default();
        let opt = |v: Option<NodeId>| v.map_or("-".to_string(), |v| v.to_string());
        let cells: [String; 8] = match answer {
            Ok((s, i)) => [
                pid.to_string(),
                i.as_ref().map_or("-".into(), |i| i.os_pid.to_string()),
                // A follower that does not vote says why: a learner, or not (yet) a member.
                match members.get(pid).copied() {
                    Some(m @ ("learner" | "non-member")) if s.role == Role::Follower => m.to_string(),
                    _ => s.role.as_str().into(),
                },
                s.term.to_string(),
                opt(s.leader),
                opt(s.voted_for),
                s.commit_index.to_string(),
                s.last_applied.to_string(),
            ],
            Err(e) => {
                let dash = || "-".to_string();
                [pid.to_string(), dash(), e.to_string(), dash(), dash(), dash(), dash(), dash()]
            }
        };
        out += &row(cells.each_ref().map(String::as_str), &url);
    }
    out
}

/// A duration in ms as an operator reads it: `40 ms`, `1.5 s`, `3m07s`.
pub fn ago(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
    }
}

/// `--verbose`: per server, why it is where it is.
pub fn details(config: &Config, answers: &[(NodeId, Answer)], members: &BTreeMap<NodeId, &'static str>) -> String {
    let mut out = String::new();
    for (pid, answer) in answers {
        let Ok((_, Some(i))) = answer else { continue };
        out += &format!(
            "\nserver {pid} (os pid {}, up {}; elections started {}, won {})\n",
            i.os_pid,
            ago(i.uptime_ms),
            i.elections_started,
            i.elections_won
        );
        match members.get(pid) {
            Some(&"non-member") => out += "  member: no (not added yet, or removed): it waits to be added\n",
            Some(role) => out += &format!("  member: {role}\n"),
            None => {}
        }
        if i.votes.is_empty() {
            out += "  votes: no vote request seen\n";
        }
        for v in &i.votes {
            let kind = match v.kind {
                leader::core::VoteKind::Vote => "vote",
                leader::core::VoteKind::PreVote => "pre-vote",
                leader::core::VoteKind::Transfer => "transfer vote",
            };
            out += &format!(
                "  {kind} for {} in term {}: {} ({} ago)\n",
                v.candidate,
                v.term,
                v.verdict.describe(),
                ago(v.ms_ago)
            );
        }
        let contact: Vec<String> = config
            .pids()
            .into_iter()
            .filter(|p| p != pid)
            .map(|p| match i.last_contact.iter().find(|c| c.pid == p) {
                Some(c) => format!("{p} {} ago", ago(c.ms_ago)),
                None => format!("{p} never"),
            })
            .collect();
        out += &format!("  last contact: {}\n", contact.join(", "));
        let dropped: Vec<String> =
            i.counters.iter().filter(|c| c.value > 0).map(|c| format!("{} {}", c.name, c.value)).collect();
        let dropped = if dropped.is_empty() { "none".to_string() } else { dropped.join(", ") };
        out += &format!("  dropped or ignored: {dropped}\n");
    }
    out
}

/// Print the status of every server; fails when no server answers, or (with `--health`) when
/// the cluster is unhealthy.
pub fn run(config: Config, options: Options) -> Result<(), i32> {
    let mut client = Client::new(config).with_timeout(options.timeout);
    let mut answers = gather(&mut client);
    // Asking each server its role also learns servers added at runtime that config.json does
    // not list (Client::membership); ask again only when there are such servers.
    let mut members = member_roles(&mut client, &answers);
    if client.config().servers.len() > answers.len() {
        answers = gather(&mut client);
        members = member_roles(&mut client, &answers);
    }
    if options.json {
        for (pid, answer) in &answers {
            println!("{}", json_line(*pid, answer, members.get(pid).copied()));
        }
    } else {
        print!("{}", table(client.config(), &answers, &members));
        if options.verbose {
            print!("{}", details(client.config(), &answers, &members));
        }
    }
    if answers.iter().all(|(_, a)| a.is_err()) {
        eprintln!("leader: no server of {} answered", client.config().path.display());
        return Err(EXIT_FAILURE);
    }
    if let Some(max_lag) = options.health {
        let problems = health::problems(&statuses(&answers), max_lag);
        if !problems.is_empty() {
            eprintln!("unhealthy:");
            for p in &problems {
                eprintln!("  {p}");
            }
            return Err(EXIT_FAILURE);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use leader::core::{LogIndex, Role, Term, VoteKind, VoteVerdict};
    use leader::transport::client_wire::{Counter, PeerContact, VoteSeen};

    fn inspection() -> Inspection {
        let status = Status {
            pid: NodeId(2),
            role: Role::Follower,
            term: Term(5),
            leader: None,
            voted_for: Some(NodeId(3)),
            commit_index: LogIndex(12),
            last_applied: LogIndex(11),
            last_index: LogIndex(13),
        };
        let vote = |candidate, kind, verdict, ms_ago| VoteSeen {
            candidate: NodeId(candidate),
            term: Term(5),
            kind,
            verdict,
            ms_ago,
        };
        Inspection {
            status,
            os_pid: 4242,
            uptime_ms: 187_000,
            votes: vec![
                vote(3, VoteKind::Vote, VoteVerdict::Granted, 1500),
                vote(1, VoteKind::PreVote, VoteVerdict::StaleLog, 40),
            ],
            last_contact: vec![PeerContact { pid: NodeId(3), ms_ago: 40 }],
            elections_started: 2,
            elections_won: 1,
            counters: vec![Counter { name: "bad_mac".into(), value: 7 }, Counter { name: "garbage".into(), value: 0 }],
        }
    }

    fn config() -> Config {
        let json = r#"{"object": {"total": 3, "Servers": [{"mypid": 1, "url": "127.0.0.1:1"},
                       {"mypid": 2, "url": "127.0.0.1:2"}, {"mypid": 3, "url": "127.0.0.1:3"}]}}"#;
        Config::parse(json, std::path::Path::new("t.json")).expect("a valid config")
    }

    #[test]
    fn verbose_says_why_each_vote_went_as_it_did_and_when_each_peer_was_heard() {
        let i = inspection();
        let answers = vec![(NodeId(2), Ok((i.status, Some(i)))), (NodeId(1), Err(CallError::Unreachable))];
        let members = BTreeMap::from([(NodeId(2), "learner")]);
        let text = details(&config(), &answers, &members);
        assert_eq!(
            text,
            "\nserver 2 (os pid 4242, up 3m07s; elections started 2, won 1)\n\
             \x20 member: learner\n\
             \x20 vote for 3 in term 5: granted (1.5 s ago)\n\
             \x20 pre-vote for 1 in term 5: refused: candidate's log is behind ours (40 ms ago)\n\
             \x20 last contact: 1 never, 3 40 ms ago\n\
             \x20 dropped or ignored: bad_mac 7\n"
        );
        assert!(table(&config(), &answers, &BTreeMap::new())
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("2        4242 follower"));
        let table = table(&config(), &answers, &members);
        assert!(
            table.lines().nth(1).unwrap().starts_with("2        4242 learner"),
            "a follower that cannot vote: {table}"
        );
    }

    #[test]
    fn json_carries_the_os_pid_votes_contact_and_counters() {
        let i = inspection();
        let line: serde_json::Value =
            serde_json::from_str(&json_line(NodeId(2), &Ok((i.status, Some(i))), Some("learner"))).unwrap();
        assert_eq!(line["os_pid"], 4242);
        assert_eq!(line["votes"][1]["reason"], "refused: candidate's log is behind ours");
        assert_eq!(line["votes"][0]["granted"], true);
        assert_eq!(line["last_contact_ms"]["3"], 40);
        assert_eq!(line["dropped"]["bad_mac"], 7);
        assert_eq!(line["last_applied"], 11);
        assert_eq!(line["member"], "learner");
    }
}
