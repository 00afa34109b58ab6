//! Time buckets for `logq stats --bucket 1m|1h|1d`, in the display zone (local, or UTC
//! with `--utc`): a bucket is a calendar minute, hour or day of that zone's wall clock,
//! so a day is 23 or 25 hours long across a daylight-saving change, and the hour that
//! repeats when clocks go back is two buckets (told apart by their offsets).

use chrono::{DateTime, FixedOffset, Local, Offset, TimeZone, Timelike, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Minute,
    Hour,
    Day,
}

impl Unit {
    pub fn parse(s: &str) -> Option<Unit> {
        Some(match s {
            "1m" | "1min" | "minute" => Unit::Minute,
            "1h" | "hour" => Unit::Hour,
            "1d" | "day" => Unit::Day,
            _ => return None,
        })
    }

    /// How far apart the instants are at which a bucket can change: every minute, or
    /// every quarter hour (every zone's offset is a multiple of 15 minutes).
    fn step_us(self) -> i64 {
        match self {
            Unit::Minute => 60_000_000,
            Unit::Hour | Unit::Day => 15 * 60_000_000,
        }
    }
}

/// The most buckets one query may ask for.
pub const MAX_BUCKETS: usize = 100_000;

/// Buckets covering `lo..=hi` (microseconds): `bounds` has one more entry than
/// `starts`; bucket `i` is `bounds[i]..bounds[i + 1]`, and `starts[i]` is its wall-clock
/// start with the zone's offset then. The first bound is `lo` itself (no row is older).
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    pub unit: Unit,
    pub bounds: Vec<i64>,
    pub starts: Vec<DateTime<FixedOffset>>,
}

fn in_zone(us: i64, utc: bool) -> DateTime<FixedOffset> {
    let t = DateTime::from_timestamp_micros(us).unwrap_or_default();
    if utc {
        t.with_timezone(&Utc.fix())
    } else {
        t.with_timezone(&Local).fixed_offset()
    }
}

/// The wall-clock start of the bucket holding `t` (with `t`'s offset), and what tells
/// buckets apart: the start for days; the start and offset for minutes and hours.
fn key(t: DateTime<FixedOffset>, unit: Unit) -> (chrono::NaiveDateTime, i32) {
    let n = t.naive_local();
    let trunc = match unit {
        Unit::Minute => n.with_second(0).and_then(|n| n.with_nanosecond(0)),
        Unit::Hour => n
            .with_minute(0)
            .and_then(|n| n.with_second(0))
            .and_then(|n| n.with_nanosecond(0)),
        Unit::Day => Some(n.date().and_time(chrono::NaiveTime::MIN)),
    }
    .unwrap_or(n);
    let offset = if unit == Unit::Day {
        0
    } else {
        t.offset().local_minus_utc()
    };
    (trunc, offset)
}

impl Buckets {
    pub fn new(unit: Unit, lo: i64, hi: i64, utc: bool) -> Result<Buckets, String> {
        let step = unit.step_us();
        let span = hi.saturating_sub(lo).max(0);
        if span / step > (MAX_BUCKETS as i64) * 60 {
            return Err(format!(
                "the rows span too long a time for {} buckets",
                match unit {
                    Unit::Minute => "1-minute",
                    Unit::Hour => "1-hour",
                    Unit::Day => "1-day",
                }
            ));
        }
        let first = in_zone(lo, utc);
        let mut current = key(first, unit);
        let label = |k: (chrono::NaiveDateTime, i32), at: DateTime<FixedOffset>| {
            // The offset of the bucket's start (for days, the offset at midnight).
            let offset = if unit == Unit::Day {
                *at.offset()
            } else {
                FixedOffset::east_opt(k.1).unwrap_or(Utc.fix())
            };
            offset.from_local_datetime(&k.0).single().unwrap_or(at)
        };
        let mut b = Buckets {
            unit,
            bounds: vec![lo],
            starts: vec![label(current, first)],
        };
        let mut t = lo.div_euclid(step) * step + step;
        while t <= hi {
            let at = in_zone(t, utc);
            let k = key(at, unit);
            if k != current {
                if b.starts.len() >= MAX_BUCKETS {
                    return Err(format!(
                        "more than {MAX_BUCKETS} buckets; narrow -S/-U or take a larger --bucket"
                    ));
                }
                current = k;
                b.bounds.push(t);
                b.starts.push(label(k, at));
            }
            t += step;
        }
        b.bounds.push(hi.saturating_add(1));
        Ok(b)
    }

    /// Whether the buckets' offsets differ (labels then show them).
    pub fn offsets_vary(&self) -> bool {
        self.starts
            .windows(2)
            .any(|w| w[0].offset() != w[1].offset())
    }

    /// The label of bucket `i`: `2026-11-23 10:00` (with the offset where offsets
    /// vary), or `2026-11-23` for days.
    pub fn label(&self, i: usize) -> String {
        let Some(t) = self.starts.get(i) else {
            return String::new();
        };
        match (self.unit, self.offsets_vary()) {
            (Unit::Day, _) => t.format("%Y-%m-%d").to_string(),
            (_, false) => t.format("%Y-%m-%d %H:%M").to_string(),
            (_, true) => t.format("%Y-%m-%d %H:%M%:z").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn utc_hours_and_days() {
        let b = Buckets::new(
            Unit::Hour,
            us("2026-11-23T10:20:00Z"),
            us("2026-11-23T12:05:00Z"),
            true,
        )
        .unwrap();
        assert_eq!(
            b.bounds,
            [
                us("2026-11-23T10:20:00Z"),
                us("2026-11-23T11:00:00Z"),
                us("2026-11-23T12:00:00Z"),
                us("2026-11-23T12:05:00Z") + 1
            ]
        );
        assert_eq!(b.label(0), "2026-11-23 10:00");
        let d = Buckets::new(
            Unit::Day,
            us("2026-11-23T10:20:00Z"),
            us("2026-11-25T00:00:00Z"),
            true,
        )
        .unwrap();
        assert_eq!(d.starts.len(), 3);
        assert_eq!(d.label(2), "2026-11-25");
        let m = Buckets::new(
            Unit::Minute,
            us("2026-11-23T10:20:30Z"),
            us("2026-11-23T10:22:00Z"),
            true,
        )
        .unwrap();
        assert_eq!(m.starts.len(), 3);
        assert!(Buckets::new(Unit::Minute, 0, us("2026-11-23T10:20:30Z"), true).is_err());
    }
}
