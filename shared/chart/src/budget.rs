//! The request budget of one process: at most `MARKET_DATA_API_RATE` chart
//! requests started per second (a token bucket holding one token, refilled
//! at the rate: requests are spaced evenly, never sent in a burst).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The longest spacing between two requests (the slowest accepted rate is
/// far faster than this; it only keeps the arithmetic finite).
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// A token bucket of capacity one: each request takes the token, which
/// comes back `1 / rate` seconds after the previous one was taken.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    /// When the next token is available (`None`: now).
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `None` when `per_second` is not a finite number above zero (no limit).
    pub fn per_second(per_second: f64) -> Option<RateLimiter> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return None;
        }
        let interval = Duration::try_from_secs_f64(1.0 / per_second)
            .unwrap_or(MAX_INTERVAL)
            .min(MAX_INTERVAL);
        Some(RateLimiter {
            interval,
            next: Mutex::new(None),
        })
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Takes the next token at or after `now`: returns when it may be used.
    /// Tokens are handed out in call order, one per `interval`.
    pub fn reserve(&self, now: Instant) -> Instant {
        // The state is one Instant: a poisoned lock still holds a valid one.
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let at = next.map_or(now, |n| n.max(now));
        *next = Some(at + self.interval);
        at
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let at = self.reserve(Instant::now());
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_spaced_by_one_over_the_rate() {
        let bucket = RateLimiter::per_second(20.0).unwrap();
        assert_eq!(bucket.interval(), Duration::from_millis(50));
        let t0 = Instant::now();
        // Ten callers at once: 0, 50, …, 450 ms.
        let times: Vec<Duration> = (0..10).map(|_| bucket.reserve(t0) - t0).collect();
        let expected: Vec<Duration> = (0..10).map(|i| Duration::from_millis(50 * i)).collect();
        assert_eq!(times, expected);
        // After a quiet spell the bucket holds one token, not a burst.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(bucket.reserve(later), later);
        assert_eq!(bucket.reserve(later), later + Duration::from_millis(50));
    }

    #[test]
    fn fractional_rates_and_nonsense() {
        let slow = RateLimiter::per_second(0.5).unwrap();
        assert_eq!(slow.interval(), Duration::from_secs(2));
        assert_eq!(
            RateLimiter::per_second(1e-300).unwrap().interval(),
            MAX_INTERVAL
        );
        for none in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(RateLimiter::per_second(none).is_none(), "{none}");
        }
    }
}
