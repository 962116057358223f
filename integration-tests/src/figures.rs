//! What the benchmarks print: latencies as percentiles.

use std::time::Duration;

/// Nearest-rank percentile `p` (0–100) of `sorted` durations (sorted ascending, not empty).
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// `d` in whole milliseconds (`263 ms`).
pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// One line of figures: p50, p99, min and max of `samples` (not empty), as the benchmarks print them.
pub fn latencies(what: &str, samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort();
    format!(
        "  {what}: p50 {}, p99 {}, min {}, max {} over {} changes",
        ms(percentile(&sorted, 50)),
        ms(percentile(&sorted, 99)),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1]),
        sorted.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50), Duration::from_millis(50));
        assert_eq!(percentile(&d, 99), Duration::from_millis(99));
        assert_eq!(percentile(&d[..1], 99), Duration::from_millis(1));
        assert_eq!(
            latencies("x", &d[..3]),
            "  x: p50 2 ms, p99 3 ms, min 1 ms, max 3 ms over 3 changes"
        );
    }
}
