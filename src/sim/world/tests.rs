//! The world's own mechanics: process pauses, per-server clocks.

use super::World;
use crate::codec::encode;
use crate::core::{NodeId, Role};
use crate::kv::{KvCommand, KvOp};
use crate::sim::events::Event;
use crate::sim::node::Clock;
use crate::sim::SimOptions;
use crate::transport::client_wire::ReadMode;

/// A healthy 3-server world without clients, run until every server follows one leader.
fn settled_world(seed: u64) -> (World, NodeId) {
    settled(World::new(SimOptions { servers: 3, faults: false, clients: 0, ..SimOptions::new(seed) }))
}

fn settled(mut world: World) -> (World, NodeId) {
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

/// Give every server of `world` a clock of rate `rates[i]` (before it starts).
fn set_rates(world: &mut World, rates: &[f64]) {
    for (i, &rate) in rates.iter().enumerate() {
        let clock = Clock { rate, offset_ms: 1000.0 * i as f64 };
        world.profile.clock[i] = clock;
        world.nodes[i].clock = clock;
    }
}

#[test]
fn each_server_ticks_at_its_own_rate_and_reads_its_own_clock() {
    let mut world = World::new(SimOptions { servers: 3, faults: false, clients: 0, ..SimOptions::new(1) });
    set_rates(&mut world, &[0.9, 1.1, 0.5]);
    world.start();
    let mut ticks = [0u64; 3];
    while let Some((at, event)) = world.queue.pop() {
        if at > 10_000 {
            break;
        }
        world.now = at;
        if let Event::Tick(id) = event {
            ticks[id.0 as usize - 1] += 1;
        }
        world.handle(event).expect("a healthy run");
    }
    // 10 s of virtual time, a tick every 10 ms of each server's own clock.
    assert!(ticks[0].abs_diff(900) <= 1 && ticks[1].abs_diff(1100) <= 1 && ticks[2].abs_diff(500) <= 1, "{ticks:?}");
    let reading = world.nodes[1].clock.at(10_000);
    assert_eq!(reading, std::time::Duration::from_millis(1000 + 11_000));
}

/// Pauses stop a process, not its clock: a leader paused for longer than its lease holds no
/// lease when it resumes, though it handled nothing in between (and is still the leader: the
/// pause is shorter than the followers' election timeout, in most seeds).
#[test]
fn a_leader_paused_past_its_lease_serves_no_lease_read_when_it_resumes() {
    let mut still_leading = 0;
    for seed in 1..=10 {
        let options = SimOptions { servers: 3, faults: false, clients: 0, lease_percent: 100, ..SimOptions::new(seed) };
        let mut world = World::new(options);
        set_rates(&mut world, &[0.9, 0.9, 0.9]);
        let (mut world, leader) = settled(world);
        let query = encode(&KvCommand { client_id: 0, seq: 0, op: KvOp::Get { key: b"k".to_vec() } });
        let lease_read = |world: &mut World, attempt| {
            let now = world.now;
            let node = &mut world.nodes[leader.0 as usize - 1];
            node.read(now, &mut || 1, (0, attempt), query.clone(), ReadMode::Lease).lease_reads
        };
        // Run on until the leader holds a lease (a round confirmed every heartbeat).
        let deadline = world.now + 1000;
        while lease_read(&mut world, 1) == 0 {
            let (at, event) = world.queue.pop().expect("ticks never stop");
            assert!(at < deadline, "seed {seed}: the leader of a healthy cluster got a lease");
            world.now = at;
            world.handle(event).expect("a healthy run");
        }
        // 90 ms of pause: more than the lease (73.6 ms of its clock, 81.8 ms at rate 0.9), less
        // than the followers' election timeout (at least 100 ms after the last heartbeat).
        let until = world.now + 90;
        world.pause(leader, until);
        loop {
            let (at, event) = world.queue.pop().expect("ticks never stop");
            world.now = at;
            let resume = matches!(event, Event::Resume { node, .. } if node == leader);
            world.handle(event).expect("a healthy run");
            if resume {
                break;
            }
        }
        if world.nodes[leader.0 as usize - 1].raft().is_some_and(|r| r.role() == Role::Leader) {
            still_leading += 1;
            assert_eq!(lease_read(&mut world, 2), 0, "seed {seed}: a lease read right after the pause");
        }
    }
    assert!(still_leading >= 5, "the leader survived its pause in {still_leading} of 10 seeds");
}
