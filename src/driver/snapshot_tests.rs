//! When the driver takes a snapshot (the policy's triggers, and their damping for large states).

use super::snapshot::Snapshots;
use super::SnapshotPolicy;
use crate::core::LogIndex;

const POLICY: SnapshotPolicy = SnapshotPolicy { entries: 100, bytes: 10_000, trailing: 10 };

#[test]
fn a_snapshot_is_due_after_the_entry_count_or_the_byte_count() {
    let mut s = Snapshots::new(POLICY, LogIndex(50), 0);
    assert!(!s.due(LogIndex(149)));
    assert!(s.due(LogIndex(150)), "100 entries since the last snapshot");
    s.applied_bytes = 10_000;
    assert!(s.due(LogIndex(51)), "10,000 command bytes since");
    let never = Snapshots::new(SnapshotPolicy { entries: 0, bytes: 0, trailing: 0 }, LogIndex(0), 0);
    assert!(!never.due(LogIndex(1_000_000)), "0 and 0: never by policy");
}

#[test]
fn with_a_large_state_a_trigger_waits_for_a_quarter_of_its_size_in_commands() {
    // A 1 MB image: 100 entries of 100 bytes (10 KB) do not justify rewriting 1 MB.
    let mut s = Snapshots::new(SnapshotPolicy { bytes: 0, ..POLICY }, LogIndex(0), 1_000_000);
    s.applied_bytes = 10_000;
    assert!(!s.due(LogIndex(100)));
    s.applied_bytes = 250_000;
    assert!(s.due(LogIndex(2_500)), "a quarter of the image's size in commands");
}
