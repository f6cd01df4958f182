//! Retry delays of tasks: exponential, factor 2, capped (SPEC §5).

/// Delay before the attempt after `failed_attempts` failures (1 = the first
/// failed): `base * 2^(failed_attempts - 1)`, at most `cap`.
pub fn retry_delay(failed_attempts: u32, base_ms: u64, cap_ms: u64) -> u64 {
    let shift = failed_attempts.saturating_sub(1).min(63);
    base_ms.saturating_mul(1u64 << shift).min(cap_ms)
}

#[cfg(test)]
mod tests {
    use super::retry_delay;

    #[test]
    fn defaults_double_from_five_seconds_up_to_a_minute() {
        let d: Vec<u64> = (1..=6).map(|n| retry_delay(n, 5000, 60000)).collect();
        assert_eq!(d, [5000, 10000, 20000, 40000, 60000, 60000]);
    }

    #[test]
    fn huge_attempt_counts_stay_at_the_cap() {
        assert_eq!(retry_delay(200, 5000, 60000), 60000);
        assert_eq!(retry_delay(0, 5000, 60000), 5000);
    }
}
