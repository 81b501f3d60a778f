//! The world's own mechanics: process pauses.

use super::World;
use crate::core::{NodeId, Role};
use crate::sim::events::Event;
use crate::sim::SimOptions;

/// A healthy 3-server world without clients, run until every server follows one leader.
fn settled_world(seed: u64) -> (World, NodeId) {
    let mut world = World::new(SimOptions { servers: 3, faults: false, clients: 0, ..SimOptions::new(seed) });
    world.start();
    loop {
        let (at, event) = world.queue.pop().expect("ticks never stop");
        world.now = at;
        world.handle(event).expect("a healthy run");
        let leader = world.nodes.iter().filter_map(|n| n.raft()).find(|r| r.role() == Role::Leader);
        if let Some(leader) = leader.map(|r| r.id()) {
            let all_follow = world.nodes.iter().all(|n| n.raft().is_some_and(|r| r.leader_id() == Some(leader)));
            if all_follow && world.now > 300 {
                return (world, leader);
            }
        }
    }
}

#[test]
fn a_paused_server_queues_its_inputs_and_handles_them_at_resume_before_its_next_tick() {
    for seed in 1..=5 {
        let (mut world, leader) = settled_world(seed);
        let follower = world.nodes.iter().map(|n| n.id).find(|&id| id != leader).expect("a follower");
        let f = follower.0 as usize - 1;
        // Longer than any election timeout (100-200 ms): had the ticks of the pause counted,
        // or been replayed before the queued heartbeats, the follower would campaign.
        let until = world.now + 600;
        world.pause(follower, until);
        let elapsed = world.nodes[f].raft().expect("up").election_elapsed_for_test();
        let term = world.nodes[f].raft().expect("up").current_term();
        let mut skipped_ticks = 0;
        loop {
            let (at, event) = world.queue.pop().expect("ticks never stop");
            world.now = at;
            let resume = matches!(event, Event::Resume { node, .. } if node == follower);
            if matches!(event, Event::Tick(id) if id == follower) {
                skipped_ticks += 1;
            }
            if resume {
                let queued = world.nodes[f].paused.as_ref().expect("still paused").inbox.len();
                assert!(queued >= 20, "seed {seed}: the leader's heartbeats were queued, not dropped ({queued})");
            }
            world.handle(event).expect("a healthy run");
            let raft = world.nodes[f].raft().expect("up");
            if resume {
                assert!(world.nodes[f].paused.is_none(), "seed {seed}: resumed");
                // Everything queued was handled within the resume, before any tick: the last
                // heartbeat reset the election timer and no tick has counted since.
                assert_eq!(raft.election_elapsed_for_test(), 0, "seed {seed}");
                assert_eq!((raft.role(), raft.leader_id(), raft.current_term()), (Role::Follower, Some(leader), term));
                assert!(skipped_ticks >= 50, "seed {seed}: the ticks of the pause were skipped ({skipped_ticks})");
                break;
            }
            // While paused it handles nothing: its election timer stands still.
            assert_eq!(raft.election_elapsed_for_test(), elapsed, "seed {seed}: a paused server handled an input");
        }
    }
}

#[test]
fn a_crash_ends_a_pause_and_its_queue() {
    let (mut world, leader) = settled_world(1);
    let follower = world.nodes.iter().map(|n| n.id).find(|&id| id != leader).expect("a follower");
    world.pause(follower, world.now + 100);
    world.crash(follower, 10, "CRASH");
    assert!(world.nodes[follower.0 as usize - 1].paused.is_none());
    world.restart(follower, 11).expect("restart");
    // The stale resume of the crashed incarnation finds no pause of that number.
    let pause = world.pauses;
    assert_eq!(world.resume(follower, pause).expect("no violation"), None);
}
