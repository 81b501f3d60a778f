//! examples/counter.rs — a custom state machine embedded in a 3-server in-process cluster, with
//! client sessions — runs, every server reads the total that was written (so the example in the
//! crate docs works), and a retried increment is applied once (so the session helper works).

#[path = "../examples/counter.rs"]
mod counter;

use leader::core::LogIndex;

#[test]
fn the_counter_example_replicates_and_a_retried_increment_applies_once() {
    let outcome = counter::run().expect("the example runs");
    let (first_index, first_answer) = outcome.last_add;
    let (retry_index, retry_answer) = outcome.retried;
    assert_eq!(first_answer, 55, "1 + … + 10");
    // The retry really went through the log again (a later entry)...
    assert!(retry_index > first_index, "the retry was committed at {retry_index}, after {first_index}");
    assert!(first_index > LogIndex(0));
    // ...and was answered with the recorded response, not applied: applying it again would
    // answer, and leave, 65.
    assert_eq!(retry_answer, 55, "the retry is answered with the first answer");
    assert_eq!(outcome.total, 55, "every server reads 55: \"add 10\" applied once");
}
