//! [`JoinWindows`]: how far apart in time two records of a stream-stream join may be
//! (Kafka's `JoinWindows`).

use std::time::Duration;

use crate::windowed::{millis_of, WindowError};

/// The time bounds of a stream-stream join (Kafka's `JoinWindows`): a record of the
/// left stream at time `t` joins the right stream's records of the same key with
/// timestamps in `[t - before, t + after]`, and symmetrically a right record at `t`
/// joins left records in `[t - after, t + before]`.
///
/// The grace period is how long after a window closes, by stream time, out-of-order
/// records are still buffered for joining; a left or outer join emits a record that
/// found no partner only once its window and grace period have passed.
///
/// ```
/// use std::time::Duration;
/// use kafka_streams::dsl::JoinWindows;
///
/// let windows = JoinWindows::of_time_difference_and_grace(
///     Duration::from_secs(5),
///     Duration::from_secs(1),
/// )
/// .unwrap()
/// .after(Duration::from_secs(2))
/// .unwrap();
/// assert_eq!((windows.before_ms(), windows.after_ms()), (5_000, 2_000));
/// assert_eq!(windows.size_ms(), 7_000);
/// assert_eq!(windows.grace_ms(), 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JoinWindows {
    before_ms: i64,
    after_ms: i64,
    grace_ms: i64,
}

impl JoinWindows {
    /// Records join when their timestamps differ by at most `time_difference`, and
    /// out-of-order records are taken until stream time passes a window's end plus
    /// `after_window_end` (Kafka's `ofTimeDifferenceAndGrace`).
    pub fn of_time_difference_and_grace(
        time_difference: Duration,
        after_window_end: Duration,
    ) -> Result<Self, WindowError> {
        let difference = millis_of("timeDifference", time_difference)?;
        let grace_ms = millis_of("afterWindowEnd", after_window_end)?;
        Ok(JoinWindows {
            before_ms: difference,
            after_ms: difference,
            grace_ms,
        })
    }

    /// Records join when their timestamps differ by at most `time_difference`, with no
    /// grace period (Kafka's `ofTimeDifferenceWithNoGrace`).
    pub fn of_time_difference_with_no_grace(
        time_difference: Duration,
    ) -> Result<Self, WindowError> {
        Self::of_time_difference_and_grace(time_difference, Duration::ZERO)
    }

    /// The same as [`JoinWindows::of_time_difference_with_no_grace`], under the name
    /// the joins issue uses.
    pub fn of_time_difference_without_grace(
        time_difference: Duration,
    ) -> Result<Self, WindowError> {
        Self::of_time_difference_with_no_grace(time_difference)
    }

    /// The same windows, with right records joining left records up to
    /// `time_difference` earlier (Kafka's `before`).
    pub fn before(self, time_difference: Duration) -> Result<Self, WindowError> {
        let before_ms = millis_of("timeDifference", time_difference)?;
        Ok(JoinWindows { before_ms, ..self })
    }

    /// The same windows, with right records joining left records up to
    /// `time_difference` later (Kafka's `after`).
    pub fn after(self, time_difference: Duration) -> Result<Self, WindowError> {
        let after_ms = millis_of("timeDifference", time_difference)?;
        Ok(JoinWindows { after_ms, ..self })
    }

    /// How much earlier a right record may be than the left record it joins (Kafka's
    /// `beforeMs`).
    pub fn before_ms(&self) -> i64 {
        self.before_ms
    }

    /// How much later a right record may be than the left record it joins (Kafka's
    /// `afterMs`).
    pub fn after_ms(&self) -> i64 {
        self.after_ms
    }

    /// The window size, `before + after` (Kafka's `size()`).
    pub fn size_ms(&self) -> i64 {
        self.before_ms.saturating_add(self.after_ms)
    }

    /// The grace period in milliseconds (Kafka's `gracePeriodMs()`).
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// How long the join's window stores keep records: size plus grace.
    pub(crate) fn retention_ms(&self) -> i64 {
        self.size_ms().saturating_add(self.grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_and_after_change_one_side_only() {
        let windows = JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(100))
            .unwrap()
            .before(Duration::from_millis(30))
            .unwrap();
        assert_eq!(
            (windows.before_ms(), windows.after_ms(), windows.grace_ms()),
            (30, 100, 0)
        );
        assert_eq!(windows.retention_ms(), 130);
        assert!(JoinWindows::of_time_difference_and_grace(Duration::MAX, Duration::ZERO).is_err());
    }
}
