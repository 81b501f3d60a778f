//! The pure parts of `leader bench` and `leader failover`: the `--workload` argument, latency
//! summaries and write stalls (the longest gap between two acknowledged writes).

use crate::cli::percentile;
use std::fmt;
use std::time::{Duration, Instant};

/// `--workload`: the share of operations that are reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Reads per hundred operations: 0 for `write`, 100 for `read`, R for `mixed=R%`.
    pub read_percent: u8,
}

impl Workload {
    /// Whether the workload reads (and so must first write the keys it reads).
    pub fn reads(&self) -> bool {
        self.read_percent > 0
    }

    /// Whether the workload writes during the measurement.
    pub fn writes(&self) -> bool {
        self.read_percent < 100
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.read_percent {
            0 => f.write_str("write"),
            100 => f.write_str("read"),
            r => write!(f, "mixed={r}%"),
        }
    }
}

/// Parse `write`, `read`, `mixed` (half reads) or `mixed=R` / `mixed=R%` (R in 0..=100).
pub fn parse_workload(s: &str) -> Result<Workload, String> {
    let read_percent = match s {
        "write" => 0,
        "read" => 100,
        "mixed" => 50,
        _ => {
            let Some(r) = s.strip_prefix("mixed=") else {
                return Err(format!("\"{s}\": expected write, read, mixed or mixed=R% (R from 0 to 100)"));
            };
            let digits = r.strip_suffix('%').unwrap_or(r);
            match digits.parse::<u8>() {
                Ok(r) if r <= 100 => r,
                _ => return Err(format!("\"{s}\": the read share R of mixed=R% must be a whole number from 0 to 100")),
            }
        }
    };
    Ok(Workload { read_percent })
}

/// Count, throughput and latency percentiles of one kind of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub ops: usize,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// The summary of `latencies_us` (microseconds, any order) over `secs` seconds.
    pub fn of(latencies_us: &[u64], secs: f64) -> Summary {
        let mut ms: Vec<f64> = latencies_us.iter().map(|&us| us as f64 / 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        Summary {
            ops: ms.len(),
            ops_per_sec: if secs > 0.0 { ms.len() as f64 / secs } else { 0.0 },
            p50_ms: percentile(&ms, 50.0),
            p90_ms: percentile(&ms, 90.0),
            p99_ms: percentile(&ms, 99.0),
            max_ms: percentile(&ms, 100.0),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"ops": self.ops, "ops_per_sec": self.ops_per_sec, "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms})
    }
}

/// Median, p99 and max of `samples_ms` (any order); zeros for none.
pub fn median_p99_max(samples_ms: &[f64]) -> (f64, f64, f64) {
    let mut sorted = samples_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    (percentile(&sorted, 50.0), percentile(&sorted, 99.0), percentile(&sorted, 100.0))
}

/// The longest time without an acknowledgement, from the start of a run to its end: the gaps
/// between consecutive acknowledgements, the one before the first and the one after the last
/// (a run that ends in a stall must not hide it).
#[derive(Clone, Copy, Debug)]
pub struct Gaps {
    last: Instant,
    longest: Duration,
}

impl Gaps {
    pub fn new(start: Instant) -> Gaps {
        Gaps { last: start, longest: Duration::ZERO }
    }

    /// An acknowledgement at `at` (not before the previous one).
    pub fn ack(&mut self, at: Instant) {
        self.longest = self.longest.max(at.saturating_duration_since(self.last));
        self.last = self.last.max(at);
    }

    /// The longest gap, the run having ended at `end`.
    pub fn longest(&self, end: Instant) -> Duration {
        self.longest.max(end.saturating_duration_since(self.last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_with_and_without_the_percent_sign() {
        let w = |s| parse_workload(s).map(|w| w.read_percent);
        assert_eq!(w("write"), Ok(0));
        assert_eq!(w("read"), Ok(100));
        assert_eq!(w("mixed"), Ok(50));
        assert_eq!(w("mixed=90%"), Ok(90));
        assert_eq!(w("mixed=5"), Ok(5));
        assert_eq!(w("mixed=0%"), Ok(0));
        assert_eq!(w("mixed=100"), Ok(100));
        for bad in ["mixed=101%", "mixed=-1", "mixed=", "mixed=50%%", "mixed=12.5", "reads", "Mixed", ""] {
            assert!(parse_workload(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn workloads_display_as_they_parse() {
        for s in ["write", "read", "mixed=50%", "mixed=7%"] {
            assert_eq!(parse_workload(s).unwrap().to_string(), s);
        }
        let mixed = parse_workload("mixed=30").unwrap();
        assert!(mixed.reads() && mixed.writes());
        assert!(!parse_workload("write").unwrap().reads());
        assert!(!parse_workload("read").unwrap().writes());
    }

    #[test]
    fn summary_percentiles_are_nearest_rank_in_ms() {
        // 1..=100 ms, shuffled: p50 is the 50th value, p99 the 99th.
        let mut us: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        us.reverse();
        us.swap(3, 70);
        let s = Summary::of(&us, 2.0);
        assert_eq!((s.ops, s.ops_per_sec), (100, 50.0));
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Summary::of(&[], 1.0), Summary::default());
        assert_eq!(median_p99_max(&[3.0, 1.0, 2.0]), (2.0, 3.0, 3.0));
    }

    #[test]
    fn the_longest_stall_counts_the_gaps_before_the_first_and_after_the_last_ack() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut gaps = Gaps::new(t0);
        for ms in [5, 10, 250, 260] {
            gaps.ack(at(ms));
        }
        assert_eq!(gaps.longest(at(270)), Duration::from_millis(240), "the gap 10 → 250 ms");
        assert_eq!(gaps.longest(at(900)), Duration::from_millis(640), "a run ending in a stall");
        let mut first = Gaps::new(t0);
        first.ack(at(300));
        first.ack(at(301));
        assert_eq!(first.longest(at(301)), Duration::from_millis(300), "no ack for the first 300 ms");
        // Acks recorded out of order (two clients) never make a negative or inflated gap.
        let mut skew = Gaps::new(t0);
        skew.ack(at(100));
        skew.ack(at(90));
        skew.ack(at(150));
        assert_eq!(skew.longest(at(150)), Duration::from_millis(100));
    }
}
