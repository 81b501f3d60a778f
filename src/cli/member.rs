//! `leader member list | add PID URL [--client-url URL] [--learner] | remove PID | promote PID`:
//! the membership (thesis §4), read from the leader and changed one server at a time.

use super::{EXIT_CONFIG, EXIT_FAILURE};
use leader::client::{CallError, Client};
use leader::config::{member_endpoints, Config};
use leader::core::{MemberRole, MembershipChange, NodeId};
use leader::transport::client_wire::MembershipInfo;
use std::time::Duration;

/// What `leader member` was asked.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum MemberCmd {
    /// Every member with its role and urls (the leader's view).
    List,
    /// Add server PID listening at URL (as config.json writes urls); it joins as a learner,
    /// catches up, and is promoted to voter automatically (unless --learner).
    Add {
        /// The new server's pid.
        pid: u64,
        /// Its peer url, e.g. 127.0.0.1:7004.
        url: String,
        /// Its client url (default: as config.json derives it, the peer port + 1000).
        #[arg(long, value_name = "URL")]
        client_url: Option<String>,
        /// Keep it a learner (no vote) until `leader member promote PID`.
        #[arg(long)]
        learner: bool,
    },
    /// Remove server PID (a removed server stops; a leader hands over first).
    Remove {
        /// The member.
        pid: u64,
    },
    /// Make learner PID a voter.
    Promote {
        /// The learner.
        pid: u64,
    },
}

/// One line per member: `PID ROLE PEER_URL CLIENT_URL`, after a line naming the entry.
pub fn render(info: &MembershipInfo) -> String {
    let state = if info.committed { "committed" } else { "not yet committed" };
    let mut out = format!("membership at index {} ({state})\n", info.index);
    for m in &info.members {
        let role = match m.role {
            MemberRole::Voter => "voter",
            MemberRole::Learner { promote: true } => "learner (promoted once caught up)",
            MemberRole::Learner { promote: false } => "learner",
        };
        let url = |u: &str| if u.is_empty() { "(as in config.json)".to_string() } else { u.to_string() };
        out += &format!("{} {role} {} {}\n", m.pid, url(&m.peer_url), url(&m.client_url));
    }
    out
}

/// Run `leader member ACTION`.
pub fn run(config: Config, action: MemberCmd, deadline: Duration) -> Result<(), i32> {
    let change = match action {
        MemberCmd::List => {
            let mut client = Client::new(config);
            return match client.leader_membership() {
                Ok(info) => {
                    print!("{}", render(&info));
                    Ok(())
                }
                Err(e) => fail(&e),
            };
        }
        MemberCmd::Add { pid, url, client_url, learner } => {
            let (peer_url, client_url) = member_endpoints(&url, client_url.as_deref()).map_err(|e| {
                eprintln!("leader: {e}");
                EXIT_CONFIG
            })?;
            MembershipChange::AddLearner { pid: NodeId(pid), peer_url, client_url, promote: !learner }
        }
        MemberCmd::Remove { pid } => MembershipChange::Remove { pid: NodeId(pid) },
        MemberCmd::Promote { pid } => MembershipChange::Promote { pid: NodeId(pid) },
    };
    let mut client = Client::new(config).with_operation_deadline(deadline);
    match client.change_membership(change) {
        Ok(index) => {
            println!("membership changed at index {index}");
            Ok(())
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &CallError) -> Result<(), i32> {
    eprintln!("leader: {e}");
    Err(EXIT_FAILURE)
}
