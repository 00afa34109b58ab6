//! Time expressions for `--since` / `--until`, journalctl's vocabulary: RFC 3339,
//! `2026-11-23 10:00[:00]`, a bare date, `today`, `yesterday`, `tomorrow`, `now`,
//! `-1h`, `+30min`, `1h ago`, `30 min ago`, `@EPOCH`, a time of day (`10:00`, `10:00:30`:
//! today) and a day with one (`today 10:00`, `yesterday 23:30`).

use chrono::{DateTime, Duration, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

pub const FORMS: &str = "RFC 3339 (2026-11-23T10:00:00Z), '2026-11-23 10:00[:00]', '2026-11-23', \
                         10:00, 'today 10:00', today, yesterday, tomorrow, now, -1h, '1h ago', \
                         '30min ago', @1700000000";

/// Reads `s` relative to `now`; wall-clock forms are in the local zone, or UTC with `utc`.
pub fn parse(s: &str, now: DateTime<Utc>, utc: bool) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    let bad = || format!("bad time '{s}' (expected {FORMS})");
    let lower = t.to_ascii_lowercase();
    let midnight = |days: i64| -> Result<DateTime<Utc>, String> {
        let today = if utc {
            now.date_naive()
        } else {
            now.with_timezone(&Local).date_naive()
        };
        let day = today + Duration::days(days);
        wall_clock(day.and_time(NaiveTime::MIN), utc).ok_or_else(bad)
    };
    let day = |word: &str| match word {
        "today" => Some(0),
        "yesterday" => Some(-1),
        "tomorrow" => Some(1),
        _ => None,
    };
    if lower == "now" {
        return Ok(now);
    }
    if let Some(d) = day(&lower) {
        return midnight(d);
    }
    // `10:00`, `today 10:00`, `yesterday 23:30:15`: a wall-clock time on that day.
    let (days, clock) = match lower.split_once(' ') {
        Some((w, rest)) if day(w).is_some() => (day(w), rest.trim()),
        _ => (Some(0), lower.as_str()),
    };
    if let (Some(days), Some(time)) = (days, time_of_day(clock)) {
        let start = midnight(days)?;
        let date = if utc {
            start.date_naive()
        } else {
            start.with_timezone(&Local).date_naive()
        };
        return wall_clock(date.and_time(time), utc).ok_or_else(bad);
    }
    if let Some(epoch) = t.strip_prefix('@') {
        let secs: f64 = epoch.parse().map_err(|_| bad())?;
        if !secs.is_finite() {
            return Err(bad());
        }
        return DateTime::from_timestamp_micros((secs * 1e6).round() as i64).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(t) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            return wall_clock(n, utc).ok_or_else(bad);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return wall_clock(d.and_time(NaiveTime::MIN), utc).ok_or_else(bad);
    }
    relative(&lower).map(|d| now + d).ok_or_else(bad)
}

/// `HH:MM` or `HH:MM:SS[.fff]`.
fn time_of_day(s: &str) -> Option<NaiveTime> {
    if !s.bytes().next().is_some_and(|b| b.is_ascii_digit()) || !s.contains(':') {
        return None;
    }
    ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(s, f).ok())
}

/// A hint for a time that did not parse but looks like a duration without a
/// direction (`1h`, `30 min`): journalctl users mean the past.
pub fn hint(s: &str) -> Option<String> {
    let t = s.trim().to_ascii_lowercase();
    if t.starts_with(['-', '+']) || t.ends_with("ago") {
        return None;
    }
    relative(&format!("-{t}")).map(|_| {
        format!(
            "'{}' is a duration: for that long ago write '-{}' or '{} ago'",
            s.trim(),
            t.replace(' ', ""),
            s.trim()
        )
    })
}

fn wall_clock(n: NaiveDateTime, utc: bool) -> Option<DateTime<Utc>> {
    if utc {
        return Some(Utc.from_utc_datetime(&n));
    }
    // In a DST gap there is no such local time; in an overlap take the earlier one.
    Local
        .from_local_datetime(&n)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// `-1h`, `+2d`, `1h ago`, `30 min ago`, `1h30min ago`: a signed duration.
fn relative(s: &str) -> Option<Duration> {
    let (body, sign) = if let Some(r) = s.strip_suffix("ago") {
        (r.trim(), -1)
    } else if let Some(r) = s.strip_prefix('-') {
        (r.trim(), -1)
    } else if let Some(r) = s.strip_prefix('+') {
        (r.trim(), 1)
    } else {
        return None;
    };
    let mut total = Duration::zero();
    let mut rest = body;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let one = match unit {
            "us" | "usec" => Duration::microseconds(1),
            "ms" | "msec" => Duration::milliseconds(1),
            "s" | "sec" | "secs" | "second" | "seconds" => Duration::seconds(1),
            "m" | "min" | "mins" | "minute" | "minutes" => Duration::minutes(1),
            "h" | "hr" | "hour" | "hours" => Duration::hours(1),
            "d" | "day" | "days" => Duration::days(1),
            "w" | "week" | "weeks" => Duration::weeks(1),
            _ => return None,
        };
        total += one * n as i32;
        parts += 1;
    }
    (parts > 0).then_some(total * sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 30, 0).unwrap()
    }

    #[test]
    fn absolute_and_relative_forms() {
        let p = |s| parse(s, now(), true).unwrap().to_rfc3339();
        assert_eq!(p("2026-11-23T10:00:00+01:00"), "2026-11-23T09:00:00+00:00");
        assert_eq!(p("2026-11-23 10:00"), "2026-11-23T10:00:00+00:00");
        assert_eq!(p("2026-11-23 10:00:05"), "2026-11-23T10:00:05+00:00");
        assert_eq!(p("2026-11-20"), "2026-11-20T00:00:00+00:00");
        assert_eq!(p("today"), "2026-11-23T00:00:00+00:00");
        assert_eq!(p("yesterday"), "2026-11-22T00:00:00+00:00");
        assert_eq!(p("now"), "2026-11-23T12:30:00+00:00");
        assert_eq!(p("-1h"), "2026-11-23T11:30:00+00:00");
        assert_eq!(p("1h ago"), "2026-11-23T11:30:00+00:00");
        assert_eq!(p("30min ago"), "2026-11-23T12:00:00+00:00");
        assert_eq!(p("2 days ago"), "2026-11-21T12:30:00+00:00");
        assert_eq!(p("1h30min ago"), "2026-11-23T11:00:00+00:00");
        assert_eq!(p("+1d"), "2026-11-24T12:30:00+00:00");
        assert_eq!(p("@1700000000"), "2023-11-14T22:13:20+00:00");
        assert_eq!(p("10:00"), "2026-11-23T10:00:00+00:00");
        assert_eq!(p("23:59:30"), "2026-11-23T23:59:30+00:00");
        assert_eq!(p("today 10:00"), "2026-11-23T10:00:00+00:00");
        assert_eq!(p("Yesterday 23:30"), "2026-11-22T23:30:00+00:00");
        assert_eq!(p("tomorrow 00:15:00"), "2026-11-24T00:15:00+00:00");
    }

    #[test]
    fn a_bare_duration_gets_a_hint() {
        assert!(hint("1h").unwrap().contains("'-1h'"), "{:?}", hint("1h"));
        assert!(hint("30 min").unwrap().contains("'-30min'"));
        assert_eq!(hint("-1h"), None);
        assert_eq!(hint("soon"), None);
        assert_eq!(hint("1h ago"), None);
    }

    #[test]
    fn nonsense_is_an_error_naming_the_forms() {
        for bad in [
            "soon",
            "1 fortnight ago",
            "-",
            "2026-13-01",
            "@x",
            "ago",
            "25:00",
            "today 10",
            "1h",
        ] {
            let e = parse(bad, now(), true).unwrap_err();
            assert!(e.contains("expected RFC 3339"), "{bad}: {e}");
        }
    }
}
