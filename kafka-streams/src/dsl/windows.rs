//! Window definitions (Kafka's `TimeWindows`, `SlidingWindows` and `SessionWindows`):
//! how a windowed aggregation cuts time into windows, and how long after a window
//! ends it still takes late records (the grace period).
//!
//! Durations are whole milliseconds, as in Kafka: a `Duration` is rounded down to
//! milliseconds. Grace is measured against stream time: a record is late, and dropped,
//! once stream time has passed its window's end plus the grace period.

use std::time::Duration;

use crate::windowed::{millis_of, Window, WindowError};

/// Grace period of the `..._with_no_grace` constructors (Kafka's `NO_GRACE_PERIOD`).
const NO_GRACE: Duration = Duration::ZERO;

/// Fixed-size windows aligned to the epoch: tumbling (the default, `advance == size`)
/// or hopping ([`TimeWindows::advance_by`], overlapping when `advance < size`).
///
/// The N-th window is `[N * advance, N * advance + size)`: its start is inclusive and
/// its end exclusive, so with tumbling windows of one minute a record at `60_000` is in
/// the window `[60_000, 120_000)`, not in `[0, 60_000)`.
///
/// ```
/// use std::time::Duration;
/// use kafka_streams::dsl::TimeWindows;
///
/// let tumbling = TimeWindows::of_size_with_no_grace(Duration::from_secs(60)).unwrap();
/// let starts: Vec<i64> = tumbling.windows_for(61_000).iter().map(|w| w.start()).collect();
/// assert_eq!(starts, [60_000]);
///
/// let hopping = TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10))
///     .unwrap()
///     .advance_by(Duration::from_secs(15))
///     .unwrap();
/// let starts: Vec<i64> = hopping.windows_for(61_000).iter().map(|w| w.start()).collect();
/// assert_eq!(starts, [15_000, 30_000, 45_000, 60_000]);
/// assert_eq!(hopping.grace_ms(), 10_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
    grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` with no grace period (Kafka's `ofSizeWithNoGrace`):
    /// a record arriving after its window's end, by stream time, is dropped.
    pub fn of_size_with_no_grace(size: Duration) -> Result<Self, WindowError> {
        Self::of_size_and_grace(size, NO_GRACE)
    }

    /// Tumbling windows of `size` that take out-of-order records until stream time
    /// passes the window end plus `after_window_end` (Kafka's `ofSizeAndGrace`).
    /// `size` must be at least one millisecond.
    pub fn of_size_and_grace(
        size: Duration,
        after_window_end: Duration,
    ) -> Result<Self, WindowError> {
        let size_ms = millis_of("size", size)?;
        if size_ms <= 0 {
            return Err(WindowError::NotPositive {
                parameter: "size",
                duration: size,
            });
        }
        let grace_ms = millis_of("afterWindowEnd", after_window_end)?;
        Ok(TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms,
        })
    }

    /// The same size and grace, with windows starting every `advance`: hopping windows
    /// (Kafka's `advanceBy`). `advance` must be at least one millisecond and at most the
    /// size.
    pub fn advance_by(self, advance: Duration) -> Result<Self, WindowError> {
        let advance_ms = millis_of("advance", advance)?;
        if advance_ms <= 0 || advance_ms > self.size_ms {
            return Err(WindowError::AdvanceOutOfRange {
                size_ms: self.size_ms,
                advance_ms,
            });
        }
        Ok(TimeWindows { advance_ms, ..self })
    }

    /// The window size in milliseconds (Kafka's `size()`).
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// How far each window starts after the previous one, in milliseconds (Kafka's
    /// `advanceMs`); equal to the size for tumbling windows.
    pub fn advance_ms(&self) -> i64 {
        self.advance_ms
    }

    /// The grace period in milliseconds (Kafka's `gracePeriodMs()`).
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// Every window that contains `timestamp`, by increasing start (Kafka's
    /// `windowsFor`): one for tumbling windows, up to `size / advance` for hopping
    /// ones. Windows start at the epoch or later, so a negative timestamp is in none,
    /// and a timestamp near the epoch in fewer hopping windows. A window end past
    /// `i64::MAX` is cut to `i64::MAX`.
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        // The earliest window containing `timestamp` starts at the first multiple of
        // the advance after `timestamp - size`.
        let earliest = timestamp
            .saturating_sub(self.size_ms)
            .saturating_add(self.advance_ms)
            .max(0);
        let mut start = earliest / self.advance_ms * self.advance_ms;
        if start > timestamp {
            return Vec::new();
        }
        let count = (timestamp - start) / self.advance_ms + 1;
        let mut windows = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        while start <= timestamp {
            let end = start.saturating_add(self.size_ms);
            windows.push(Window::from_checked_bounds(start, end));
            match start.checked_add(self.advance_ms) {
                Some(next) => start = next,
                None => break,
            }
        }
        windows
    }
}

/// Windows of a fixed length that slide with the records (Kafka's `SlidingWindows`):
/// two records fall in a common window when their timestamps differ by at most the
/// time difference. Both bounds of a sliding window are inclusive: a window is
/// `[start, start + time difference]`.
///
/// A time difference of zero is allowed (windows of records with equal timestamps),
/// as in Kafka.
///
/// ```
/// use std::time::Duration;
/// use kafka_streams::dsl::SlidingWindows;
///
/// let windows = SlidingWindows::of_time_difference_and_grace(
///     Duration::from_secs(10),
///     Duration::from_secs(30),
/// )
/// .unwrap();
/// assert_eq!((windows.time_difference_ms(), windows.grace_ms()), (10_000, 30_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlidingWindows {
    time_difference_ms: i64,
    grace_ms: i64,
}

impl SlidingWindows {
    /// Sliding windows of `time_difference` with no grace period (Kafka's
    /// `ofTimeDifferenceWithNoGrace`).
    pub fn of_time_difference_with_no_grace(
        time_difference: Duration,
    ) -> Result<Self, WindowError> {
        Self::of_time_difference_and_grace(time_difference, NO_GRACE)
    }

    /// Sliding windows of `time_difference` that take out-of-order records until
    /// stream time passes the window end plus `after_window_end` (Kafka's
    /// `ofTimeDifferenceAndGrace`).
    pub fn of_time_difference_and_grace(
        time_difference: Duration,
        after_window_end: Duration,
    ) -> Result<Self, WindowError> {
        Ok(SlidingWindows {
            time_difference_ms: millis_of("timeDifference", time_difference)?,
            grace_ms: millis_of("afterWindowEnd", after_window_end)?,
        })
    }

    /// The largest difference between two records' timestamps in one window, in
    /// milliseconds (Kafka's `timeDifferenceMs()`): the window size.
    pub fn time_difference_ms(&self) -> i64 {
        self.time_difference_ms
    }

    /// The grace period in milliseconds (Kafka's `gracePeriodMs()`).
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }
}

/// Sessions of activity per key (Kafka's `SessionWindows`): records of a key less than
/// the inactivity gap apart belong to one session, and a record that bridges two
/// sessions merges them. A session's window runs from its first to its last record,
/// both inclusive; a session of one record has `start == end`.
///
/// ```
/// use std::time::Duration;
/// use kafka_streams::dsl::SessionWindows;
///
/// let sessions = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(300)).unwrap();
/// assert_eq!((sessions.inactivity_gap_ms(), sessions.grace_ms()), (300_000, 0));
/// assert!(SessionWindows::of_inactivity_gap_with_no_grace(Duration::ZERO).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionWindows {
    gap_ms: i64,
    grace_ms: i64,
}

impl SessionWindows {
    /// Sessions closed by `inactivity_gap` without records, with no grace period
    /// (Kafka's `ofInactivityGapWithNoGrace`).
    pub fn of_inactivity_gap_with_no_grace(inactivity_gap: Duration) -> Result<Self, WindowError> {
        Self::of_inactivity_gap_and_grace(inactivity_gap, NO_GRACE)
    }

    /// Sessions closed by `inactivity_gap` without records, that take out-of-order
    /// records until stream time passes the session end plus `after_window_end`
    /// (Kafka's `ofInactivityGapAndGrace`). The gap must be at least one millisecond.
    pub fn of_inactivity_gap_and_grace(
        inactivity_gap: Duration,
        after_window_end: Duration,
    ) -> Result<Self, WindowError> {
        let gap_ms = millis_of("inactivityGap", inactivity_gap)?;
        if gap_ms <= 0 {
            return Err(WindowError::NotPositive {
                parameter: "inactivityGap",
                duration: inactivity_gap,
            });
        }
        Ok(SessionWindows {
            gap_ms,
            grace_ms: millis_of("afterWindowEnd", after_window_end)?,
        })
    }

    /// The inactivity gap in milliseconds (Kafka's `inactivityGap()`).
    pub fn inactivity_gap_ms(&self) -> i64 {
        self.gap_ms
    }

    /// The grace period in milliseconds (Kafka's `gracePeriodMs()`).
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn bounds(windows: &[Window]) -> Vec<(i64, i64)> {
        windows.iter().map(|w| (w.start(), w.end())).collect()
    }

    #[test]
    fn tumbling_windows_are_epoch_aligned_with_exclusive_ends() {
        let windows = TimeWindows::of_size_with_no_grace(ms(10)).unwrap();
        assert_eq!(
            (windows.size_ms(), windows.advance_ms(), windows.grace_ms()),
            (10, 10, 0)
        );
        assert_eq!(bounds(&windows.windows_for(0)), [(0, 10)]);
        assert_eq!(bounds(&windows.windows_for(9)), [(0, 10)]);
        // The end is exclusive: 10 starts the next window.
        assert_eq!(bounds(&windows.windows_for(10)), [(10, 20)]);
        assert_eq!(bounds(&windows.windows_for(1_234)), [(1_230, 1_240)]);
    }

    #[test]
    fn hopping_windows_for_give_every_window_containing_the_timestamp() {
        let windows = TimeWindows::of_size_and_grace(ms(10), ms(3))
            .unwrap()
            .advance_by(ms(5))
            .unwrap();
        assert_eq!(
            (windows.size_ms(), windows.advance_ms(), windows.grace_ms()),
            (10, 5, 3)
        );
        assert_eq!(bounds(&windows.windows_for(12)), [(5, 15), (10, 20)]);
        // Start inclusive, end exclusive on both windows.
        assert_eq!(bounds(&windows.windows_for(15)), [(10, 20), (15, 25)]);
        assert_eq!(bounds(&windows.windows_for(14)), [(5, 15), (10, 20)]);
        // Near the epoch only the windows starting at 0 or later exist.
        assert_eq!(bounds(&windows.windows_for(3)), [(0, 10)]);
        let thirds = TimeWindows::of_size_with_no_grace(ms(9))
            .unwrap()
            .advance_by(ms(3))
            .unwrap();
        assert_eq!(bounds(&thirds.windows_for(10)), [(3, 12), (6, 15), (9, 18)]);
        // An advance that does not divide the size.
        let uneven = TimeWindows::of_size_with_no_grace(ms(10))
            .unwrap()
            .advance_by(ms(4))
            .unwrap();
        assert_eq!(
            bounds(&uneven.windows_for(13)),
            [(4, 14), (8, 18), (12, 22)]
        );
    }

    #[test]
    fn windows_for_handles_extreme_timestamps() {
        let windows = TimeWindows::of_size_with_no_grace(ms(10))
            .unwrap()
            .advance_by(ms(5))
            .unwrap();
        assert!(windows.windows_for(-1).is_empty());
        assert!(windows.windows_for(i64::MIN).is_empty());
        // Ends past the largest timestamp are cut to it.
        assert_eq!(
            bounds(&windows.windows_for(i64::MAX)),
            [(i64::MAX - 7, i64::MAX), (i64::MAX - 2, i64::MAX)]
        );
        let tumbling = TimeWindows::of_size_with_no_grace(ms(1)).unwrap();
        assert_eq!(
            bounds(&tumbling.windows_for(i64::MAX)),
            [(i64::MAX, i64::MAX)]
        );
    }

    #[test]
    fn time_windows_validate_as_kafka() {
        assert_eq!(
            TimeWindows::of_size_with_no_grace(Duration::ZERO),
            Err(WindowError::NotPositive {
                parameter: "size",
                duration: Duration::ZERO
            })
        );
        // Sub-millisecond sizes round down to zero, as Kafka's `Duration.toMillis()`.
        assert!(matches!(
            TimeWindows::of_size_with_no_grace(Duration::from_micros(999)),
            Err(WindowError::NotPositive { .. })
        ));
        assert!(matches!(
            TimeWindows::of_size_and_grace(ms(10), Duration::MAX),
            Err(WindowError::DurationOverflow {
                parameter: "afterWindowEnd",
                ..
            })
        ));
        assert!(matches!(
            TimeWindows::of_size_with_no_grace(Duration::MAX),
            Err(WindowError::DurationOverflow {
                parameter: "size",
                ..
            })
        ));
        let windows = TimeWindows::of_size_with_no_grace(ms(10)).unwrap();
        assert_eq!(
            windows.advance_by(ms(11)),
            Err(WindowError::AdvanceOutOfRange {
                size_ms: 10,
                advance_ms: 11
            })
        );
        assert_eq!(
            windows.advance_by(Duration::ZERO),
            Err(WindowError::AdvanceOutOfRange {
                size_ms: 10,
                advance_ms: 0
            })
        );
        assert_eq!(windows.advance_by(ms(10)), Ok(windows));
        assert!(windows
            .advance_by(Duration::ZERO)
            .unwrap_err()
            .to_string()
            .contains("window duration which is 10 ms"));
    }

    #[test]
    fn sliding_windows_validate_as_kafka() {
        let windows = SlidingWindows::of_time_difference_with_no_grace(ms(10)).unwrap();
        assert_eq!((windows.time_difference_ms(), windows.grace_ms()), (10, 0));
        // Kafka allows a zero time difference.
        let zero = SlidingWindows::of_time_difference_and_grace(Duration::ZERO, ms(5)).unwrap();
        assert_eq!((zero.time_difference_ms(), zero.grace_ms()), (0, 5));
        assert!(matches!(
            SlidingWindows::of_time_difference_with_no_grace(Duration::MAX),
            Err(WindowError::DurationOverflow {
                parameter: "timeDifference",
                ..
            })
        ));
        assert!(matches!(
            SlidingWindows::of_time_difference_and_grace(ms(1), Duration::MAX),
            Err(WindowError::DurationOverflow {
                parameter: "afterWindowEnd",
                ..
            })
        ));
    }

    #[test]
    fn session_windows_validate_as_kafka() {
        let windows = SessionWindows::of_inactivity_gap_and_grace(ms(300), ms(60)).unwrap();
        assert_eq!((windows.inactivity_gap_ms(), windows.grace_ms()), (300, 60));
        let no_grace = SessionWindows::of_inactivity_gap_with_no_grace(ms(1)).unwrap();
        assert_eq!(no_grace.grace_ms(), 0);
        assert_eq!(
            SessionWindows::of_inactivity_gap_with_no_grace(Duration::ZERO),
            Err(WindowError::NotPositive {
                parameter: "inactivityGap",
                duration: Duration::ZERO
            })
        );
        assert!(matches!(
            SessionWindows::of_inactivity_gap_and_grace(ms(1), Duration::MAX),
            Err(WindowError::DurationOverflow {
                parameter: "afterWindowEnd",
                ..
            })
        ));
    }
}
