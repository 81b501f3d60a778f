//! examples/counter.rs — a custom state machine embedded in a 3-server in-process cluster — runs
//! and every server reads the total that was written (so the example in the crate docs works).

#[path = "../examples/counter.rs"]
mod counter;

#[test]
fn the_counter_example_replicates_and_every_server_reads_the_total() {
    assert_eq!(counter::run().expect("the example runs"), 55);
}
