//! Windows as values: a [`Window`] (start and end in epoch milliseconds), a
//! [`Windowed`] key (a key and the window it was aggregated in), their serdes
//! (`serdes.rs`), and [`WindowError`], the errors of windows and window definitions.
//!
//! They live in no layer of their own because the DSL's windowed aggregations and the
//! window and session stores of [`state`](crate::state) both use them. Users reach them
//! as `kafka_streams::dsl::{Window, Windowed, ...}`, where Kafka Streams has them
//! (`org.apache.kafka.streams.kstream`).

pub(crate) mod serdes;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::StreamsError;

/// Why a window or a window definition is invalid. Kafka Streams throws
/// `IllegalArgumentException` with these messages.
///
/// Durations are `std::time::Duration`, so a negative size, advance or grace period,
/// which Kafka rejects at run time, cannot be written at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// A duration too long to count in `i64` milliseconds (Kafka: "It can't be
    /// converted to milliseconds").
    #[error("invalid value for parameter \"{parameter}\" (value was: {duration:?}): it can't be converted to milliseconds")]
    DurationOverflow {
        /// The parameter: `size`, `advance`, `afterWindowEnd`, `timeDifference`,
        /// `inactivityGap` or `windowSize`.
        parameter: &'static str,
        /// The duration given.
        duration: Duration,
    },
    /// A window size or session inactivity gap of less than one millisecond (Kafka
    /// counts durations in whole milliseconds, rounding down).
    #[error("invalid value for parameter \"{parameter}\" (value was: {duration:?}): it must be at least one millisecond")]
    NotPositive {
        /// The parameter: `size`, `inactivityGap` or `windowSize`.
        parameter: &'static str,
        /// The duration given.
        duration: Duration,
    },
    /// A hopping window's advance of zero, or larger than its size.
    #[error("window advancement interval should be more than zero and less than window duration which is {size_ms} ms, but given advancement interval is: {advance_ms} ms")]
    AdvanceOutOfRange {
        /// The window size.
        size_ms: i64,
        /// The advance given.
        advance_ms: i64,
    },
    /// A window starting before the epoch.
    #[error("window start {start_ms} ms cannot be negative")]
    NegativeStart {
        /// The start given.
        start_ms: i64,
    },
    /// A window ending before it starts.
    #[error("window end {end_ms} ms cannot be smaller than window start {start_ms} ms")]
    EndBeforeStart {
        /// The start given.
        start_ms: i64,
        /// The end given.
        end_ms: i64,
    },
    /// A time window (tumbling, hopping) must end after it starts: its end is
    /// exclusive, so a window with `end == start` would hold nothing.
    #[error("time window starting at {start_ms} ms must end after its start")]
    EmptyTimeWindow {
        /// The start (and end) given.
        start_ms: i64,
    },
}

impl From<WindowError> for StreamsError {
    fn from(error: WindowError) -> Self {
        StreamsError::Topology(format!("invalid window: {error}"))
    }
}

/// Whole milliseconds of `duration`, rounded down as Kafka's `Duration.toMillis()`,
/// or [`WindowError::DurationOverflow`] naming `parameter`.
pub(crate) fn millis_of(parameter: &'static str, duration: Duration) -> Result<i64, WindowError> {
    i64::try_from(duration.as_millis()).map_err(|_| WindowError::DurationOverflow {
        parameter,
        duration,
    })
}

/// A time interval in epoch milliseconds (Kafka's `Window`).
///
/// Which bounds are inclusive depends on the kind of window: tumbling and hopping
/// windows ([`TimeWindows`](crate::dsl::TimeWindows)) hold `start <= t < end`; sliding
/// windows ([`SlidingWindows`](crate::dsl::SlidingWindows)) and session windows
/// ([`SessionWindows`](crate::dsl::SessionWindows)) hold `start <= t <= end`, and a
/// session of one record has `start == end`.
///
/// ```
/// use kafka_streams::dsl::Window;
/// let window = Window::new(0, 60_000).unwrap();
/// assert_eq!((window.start(), window.end()), (0, 60_000));
/// assert_eq!(window.to_string(), "Window{startMs=0, endMs=60000}");
/// assert!(Window::new(-1, 10).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    start_ms: i64,
    end_ms: i64,
}

impl Window {
    /// The window from `start_ms` to `end_ms`. As Kafka's `Window`, the start must not
    /// be negative and the end must not be before the start.
    pub fn new(start_ms: i64, end_ms: i64) -> Result<Self, WindowError> {
        if start_ms < 0 {
            return Err(WindowError::NegativeStart { start_ms });
        }
        if end_ms < start_ms {
            return Err(WindowError::EndBeforeStart { start_ms, end_ms });
        }
        Ok(Window { start_ms, end_ms })
    }

    /// A time window (end exclusive): [`Window::new`]'s checks, and the end must be
    /// after the start (Kafka's `TimeWindow`).
    pub fn time_window(start_ms: i64, end_ms: i64) -> Result<Self, WindowError> {
        let window = Window::new(start_ms, end_ms)?;
        if end_ms == start_ms {
            return Err(WindowError::EmptyTimeWindow { start_ms });
        }
        Ok(window)
    }

    /// For bounds the caller has already checked (`0 <= start_ms <= end_ms`).
    pub(crate) fn from_checked_bounds(start_ms: i64, end_ms: i64) -> Self {
        debug_assert!(0 <= start_ms && start_ms <= end_ms);
        Window { start_ms, end_ms }
    }

    /// The start in epoch milliseconds (Kafka's `start()`).
    pub fn start(&self) -> i64 {
        self.start_ms
    }

    /// The end in epoch milliseconds (Kafka's `end()`).
    pub fn end(&self) -> i64 {
        self.end_ms
    }

    /// The start as a point in time (Kafka's `startTime()`).
    pub fn start_time(&self) -> SystemTime {
        epoch_millis(self.start_ms)
    }

    /// The end as a point in time (Kafka's `endTime()`).
    pub fn end_time(&self) -> SystemTime {
        epoch_millis(self.end_ms)
    }
}

/// `millis` (not negative: a window's bounds) after the epoch.
fn epoch_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis.unsigned_abs())
}

impl fmt::Display for Window {
    /// Kafka's `Window.toString()`: `Window{startMs=0, endMs=10}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Window{{startMs={}, endMs={}}}",
            self.start_ms, self.end_ms
        )
    }
}

/// A key and the window it belongs to: the key type of a windowed aggregation's
/// table (Kafka's `Windowed<K>`).
///
/// ```
/// use kafka_streams::dsl::{Window, Windowed};
/// let key = Windowed::new("sensor-1".to_string(), Window::new(0, 60_000).unwrap());
/// assert_eq!(key.to_string(), "[sensor-1@0/60000]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// `key` in `window`.
    pub fn new(key: K, window: Window) -> Self {
        Windowed { key, window }
    }

    /// The key (Kafka's `key()`).
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The window (Kafka's `window()`).
    pub fn window(&self) -> Window {
        self.window
    }
}

impl<K: fmt::Display> fmt::Display for Windowed<K> {
    /// Kafka's `Windowed.toString()`: `[key@start/end]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}@{}/{}]",
            self.key, self.window.start_ms, self.window.end_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_kafkas_bounds_rules() {
        let window = Window::new(5, 5).unwrap();
        assert_eq!((window.start(), window.end()), (5, 5));
        assert_eq!(
            Window::new(-1, 5),
            Err(WindowError::NegativeStart { start_ms: -1 })
        );
        assert_eq!(
            Window::new(10, 9),
            Err(WindowError::EndBeforeStart {
                start_ms: 10,
                end_ms: 9
            })
        );
        assert_eq!(
            Window::time_window(5, 5),
            Err(WindowError::EmptyTimeWindow { start_ms: 5 })
        );
        assert_eq!(Window::time_window(5, 6).unwrap().end(), 6);
    }

    #[test]
    fn windows_print_and_convert_as_kafka() {
        let window = Window::new(1_000, 61_000).unwrap();
        assert_eq!(window.to_string(), "Window{startMs=1000, endMs=61000}");
        assert_eq!(
            window.start_time(),
            UNIX_EPOCH + Duration::from_millis(1_000)
        );
        assert_eq!(
            window.end_time(),
            UNIX_EPOCH + Duration::from_millis(61_000)
        );
        let key = Windowed::new(7_i64, window);
        assert_eq!(key.to_string(), "[7@1000/61000]");
        assert_eq!(*key.key(), 7);
        assert_eq!(key.window(), window);
    }

    #[test]
    fn windowed_keys_order_by_key_then_window() {
        let early = Window::new(0, 10).unwrap();
        let late = Window::new(10, 20).unwrap();
        let mut keys = vec![
            Windowed::new("b", early),
            Windowed::new("a", late),
            Windowed::new("a", early),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                Windowed::new("a", early),
                Windowed::new("a", late),
                Windowed::new("b", early)
            ]
        );
    }

    #[test]
    fn durations_count_in_whole_milliseconds() {
        assert_eq!(millis_of("size", Duration::from_micros(1_999)), Ok(1));
        assert_eq!(
            millis_of("size", Duration::MAX),
            Err(WindowError::DurationOverflow {
                parameter: "size",
                duration: Duration::MAX
            })
        );
        let error: StreamsError = WindowError::NegativeStart { start_ms: -1 }.into();
        assert!(error.to_string().contains("window start -1 ms"));
    }
}
