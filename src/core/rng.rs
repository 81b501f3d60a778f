//! A tiny seeded PRNG (SplitMix64) for the core.
//!
//! The core must replay exactly from its seed (DESIGN.md: "randomness comes from a PRNG seeded
//! through the core's options"), so it owns its generator instead of asking the OS. SplitMix64
//! is 5 lines, passes BigCrush, and is plenty for spreading election timeouts (§5.2).

/// SplitMix64 (Steele, Lea, Flood 2014). Deterministic for a given seed.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator that yields the same sequence for the same `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[low, high)`; `high` must exceed `low`. The modulo bias is below 2^-32 for
    /// the small ranges the core asks for, far under anything an election could notice.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(high > low, "empty range {low}..{high}");
        low + self.next_u64() % (high - low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_range_is_respected() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..1000 {
            let x = a.range(20, 40);
            assert_eq!(x, b.range(20, 40));
            assert!((20..40).contains(&x));
        }
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
    }
}
