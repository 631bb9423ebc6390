//! Cumulative counter series: turns raw kernel counters into monotonic OTLP
//! sums with a start time. A 32-bit counter that wraps keeps counting (the
//! wrap is added back); any other decrease is a reset and starts a new
//! series. A series not seen in a collection (a device that disappeared) is
//! forgotten, so if it comes back it starts anew. Pure bookkeeping: no I/O.

use std::collections::HashMap;

const WRAP_32: u64 = 1 << 32;

#[derive(Debug, Clone)]
struct Series {
    last_raw: u64,
    /// Added to raw values: the wraps seen so far.
    offset: u64,
    start: u64,
    seen_round: u64,
}

/// Every cumulative series of one source.
#[derive(Debug, Default)]
pub struct CounterTracker {
    series: HashMap<String, Series>,
    round: u64,
    last_time: u64,
    time: u64,
}

impl CounterTracker {
    /// Starts a collection at `time` (ns since the epoch).
    pub fn begin_round(&mut self, time: u64) {
        self.round += 1;
        self.time = time;
    }

    /// Ends a collection: series not observed in it are forgotten.
    pub fn end_round(&mut self) {
        let round = self.round;
        self.series.retain(|_, s| s.seen_round == round);
        self.last_time = self.time;
    }

    /// Time of the previous collection (0 before the first).
    pub fn last_time(&self) -> u64 {
        self.last_time
    }

    /// Number of series tracked.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Records `raw` for series `key` at `now`; returns the monotonic total
    /// and the series' start time. A new series starts at `first_seen_start`
    /// (or `now` when that is 0).
    ///
    /// A decrease from a value in the upper half of the 32-bit range is a
    /// 32-bit wrap (older kernels and 32-bit Pis keep some counters in 32
    /// bits); any other decrease is a reset (a re-created device): the series
    /// restarts from `raw` with the previous collection as its start.
    pub fn observe(
        &mut self,
        key: String,
        raw: u64,
        now: u64,
        first_seen_start: u64,
    ) -> (u64, u64) {
        let round = self.round;
        let reset_start = if self.last_time > 0 {
            self.last_time
        } else {
            now
        };
        let series = self.series.entry(key).or_insert_with(|| Series {
            last_raw: raw,
            offset: 0,
            start: if first_seen_start > 0 {
                first_seen_start
            } else {
                now
            },
            seen_round: round,
        });
        if raw < series.last_raw {
            if series.last_raw < WRAP_32 && series.last_raw >= WRAP_32 / 2 {
                series.offset += WRAP_32;
            } else {
                series.offset = 0;
                series.start = reset_start;
            }
        }
        series.last_raw = raw;
        series.seen_round = round;
        (raw + series.offset, series.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_32_bit_wrap_keeps_the_total_growing() {
        let mut t = CounterTracker::default();
        t.begin_round(10);
        assert_eq!(
            t.observe("rx".into(), u32::MAX as u64 - 9, 10, 1),
            (u32::MAX as u64 - 9, 1)
        );
        t.end_round();
        t.begin_round(20);
        // 10 up to the wrap, then 5 more.
        assert_eq!(t.observe("rx".into(), 5, 20, 1), (WRAP_32 + 5, 1));
        t.end_round();
    }

    #[test]
    fn a_decrease_of_a_64_bit_counter_starts_a_new_series() {
        let mut t = CounterTracker::default();
        t.begin_round(10);
        t.observe("rx".into(), 10_000_000_000, 10, 1);
        t.end_round();
        t.begin_round(20);
        assert_eq!(
            t.observe("rx".into(), 7, 20, 1),
            (7, 10),
            "start = previous collection"
        );
        t.end_round();
    }

    #[test]
    fn unseen_series_are_forgotten() {
        let mut t = CounterTracker::default();
        t.begin_round(10);
        t.observe("a".into(), 1, 10, 1);
        t.observe("b".into(), 1, 10, 1);
        t.end_round();
        t.begin_round(20);
        t.observe("a".into(), 2, 20, 10);
        t.end_round();
        assert_eq!(t.len(), 1);
        t.begin_round(30);
        assert_eq!(t.observe("b".into(), 1, 30, 20), (1, 20), "b is new again");
    }
}
