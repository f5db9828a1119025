//! Medians and their confidence intervals, for benchmarks whose runs spread too widely for
//! one figure to mean much on its own (pgbench on a 2-core VM moves 5-10% between runs).
//!
//! The interval is distribution-free: the order statistics around the median that cover it
//! with at least the asked-for probability, from the binomial distribution of how many runs
//! fall below the true median. No assumption about the shape of the runs' spread is made.

/// The median of `values`, with the interval of order statistics that holds the true median
/// with probability `coverage` or more.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianInterval {
    pub median: f64,
    pub low: f64,
    pub high: f64,
    /// What the interval actually covers: the smallest binomial coverage not below the one
    /// asked for.
    pub coverage: f64,
}

/// The median of `values`: the middle one, or the mean of the two middle ones.
/// `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let sorted = sorted(values);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The median of `values` and an interval around it that covers the true median with at
/// least `coverage` (for example 0.95). `None` when there are too few values for that
/// coverage: six are the fewest for 95%.
pub fn median_interval(values: &[f64], coverage: f64) -> Option<MedianInterval> {
    let sorted = sorted(values);
    let n = sorted.len();
    let median = median(&sorted)?;
    // The interval [x(k), x(n+1-k)] (1-based) misses the true median when k or more runs
    // fall on one side of it: probability 2·P(Bin(n, ½) < k). Take the largest k whose
    // interval still covers enough.
    let mut best = None;
    for k in 1..=n.div_ceil(2) {
        let covered = 1.0 - 2.0 * binomial_half_cdf(n, k - 1);
        if covered < coverage {
            break;
        }
        best = Some((k, covered));
    }
    let (k, covered) = best?;
    Some(MedianInterval {
        median,
        low: sorted[k - 1],
        high: sorted[n - k],
        coverage: covered,
    })
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// P(X ≤ at_most) for X ~ Bin(n, ½).
fn binomial_half_cdf(n: usize, at_most: usize) -> f64 {
    let mut term = 0.5f64.powi(i32::try_from(n).unwrap_or(i32::MAX)); // C(n, 0)/2^n
    let mut sum = 0.0;
    for i in 0..=at_most.min(n) {
        sum += term;
        // C(n, i+1) = C(n, i)·(n-i)/(i+1)
        term *= (n - i) as f64 / (i + 1) as f64;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn binomial_cdf_matches_hand_counts() {
        // Bin(4, ½): 1, 4, 6, 4, 1 out of 16.
        assert!((binomial_half_cdf(4, 0) - 1.0 / 16.0).abs() < 1e-12);
        assert!((binomial_half_cdf(4, 1) - 5.0 / 16.0).abs() < 1e-12);
        assert!((binomial_half_cdf(4, 4) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn twelve_runs_give_the_third_and_tenth_for_95_percent() {
        // Bin(12, ½): P(X ≤ 2) = 79/4096, so [x(3), x(10)] covers 1 - 158/4096 = 96.1%;
        // P(X ≤ 3) = 299/4096 would leave 85.4%, too little.
        let values: Vec<f64> = (1..=12).map(f64::from).rev().collect();
        let interval = median_interval(&values, 0.95).unwrap();
        assert_eq!(interval.median, 6.5);
        assert_eq!((interval.low, interval.high), (3.0, 10.0));
        assert!((interval.coverage - (1.0 - 158.0 / 4096.0)).abs() < 1e-12);
    }

    #[test]
    fn too_few_runs_have_no_95_percent_interval() {
        // Five runs: even the full range misses the median with probability 2/32.
        assert_eq!(median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95), None);
        let six = median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 0.95).unwrap();
        assert_eq!((six.low, six.high), (1.0, 6.0));
    }
}
