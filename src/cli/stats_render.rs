//! Printing `logq stats` and `logq -F`: a table, JSON lines, or on a terminal a bar
//! chart of rows per bucket, each bar split and coloured by level.

use super::buckets::Buckets;
use crate::message::{Level, write_json_str};
use crate::store::{StatField, StatRow};
use owo_colors::{OwoColorize, Style};
use std::io::{self, Write};

/// Column width of the counts (right-aligned).
fn count_width(rows: &[StatRow]) -> usize {
    rows.iter()
        .map(|r| r.count.to_string().len())
        .max()
        .unwrap_or(1)
        .max(5)
}

/// `BUCKET  FIELD…  COUNT`, one row per bucket and group.
pub fn table(
    out: &mut impl Write,
    rows: &[StatRow],
    by: &[StatField],
    buckets: Option<&Buckets>,
) -> io::Result<()> {
    let mut widths: Vec<usize> = by.iter().map(|f| f.name().len()).collect();
    for r in rows {
        for (w, v) in widths.iter_mut().zip(&r.key) {
            *w = (*w).max(v.as_deref().unwrap_or("-").chars().count());
        }
    }
    let label_width = buckets.map_or(0, |b| {
        (0..b.starts.len())
            .map(|i| b.label(i).len())
            .max()
            .unwrap_or(6)
            .max(6)
    });
    let cw = count_width(rows);
    let mut line = String::new();
    if buckets.is_some() {
        line.push_str(&format!("{:label_width$}  ", "BUCKET"));
    }
    for (f, w) in by.iter().zip(&widths) {
        line.push_str(&format!("{:w$}  ", f.name().to_uppercase()));
    }
    line.push_str(&format!("{:>cw$}", "COUNT"));
    writeln!(out, "{}", line.trim_end())?;
    for r in rows {
        line.clear();
        if let Some(b) = buckets {
            line.push_str(&format!("{:label_width$}  ", b.label(r.bucket)));
        }
        for (v, w) in r.key.iter().zip(&widths) {
            line.push_str(&format!("{:w$}  ", v.as_deref().unwrap_or("-")));
        }
        line.push_str(&format!("{:>cw$}", r.count));
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// One JSON object per row: `{"bucket":"2026-11-23T10:00:00+01:00","level":"err","count":3}`
/// (`bucket` only with buckets; one key per `--by` field, null where the row has none).
pub fn json(
    out: &mut impl Write,
    rows: &[StatRow],
    by: &[StatField],
    buckets: Option<&Buckets>,
) -> io::Result<()> {
    let mut line = String::new();
    for r in rows {
        line.clear();
        line.push('{');
        if let Some(b) = buckets {
            line.push_str("\"bucket\":");
            let start = b
                .starts
                .get(r.bucket)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            write_json_str(&start, &mut line);
            line.push(',');
        }
        for (f, v) in by.iter().zip(&r.key) {
            write_json_str(f.name(), &mut line);
            line.push(':');
            match v {
                Some(v) => write_json_str(v, &mut line),
                None => line.push_str("null"),
            }
            line.push(',');
        }
        line.push_str(&format!("\"count\":{}}}", r.count));
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Level groups of a bar, most severe first: the colour and (without colour) the
/// character each is drawn with.
const GROUPS: [(&str, char); 5] = [
    ("err and worse", '#'),
    ("warning", '+'),
    ("notice", '='),
    ("info", '-'),
    ("debug", '.'),
];

fn group(level: Level) -> usize {
    match level {
        Level::Emerg | Level::Alert | Level::Crit | Level::Err => 0,
        Level::Warning => 1,
        Level::Notice => 2,
        Level::Info => 3,
        Level::Debug => 4,
    }
}

fn style(group: usize) -> Style {
    match group {
        0 => Style::new().red(),
        1 => Style::new().yellow(),
        2 => Style::new().bright_white(),
        3 => Style::new().green(),
        _ => Style::new().dimmed(),
    }
}

/// The terminal's width in columns ($COLUMNS, else the terminal's, else 80).
pub fn terminal_width() -> usize {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return c;
    }
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            return ws.ws_col as usize;
        }
    }
    80
}

/// Rows per bucket as bars, split by level (rows must be grouped by level alone).
pub fn chart(
    out: &mut impl Write,
    rows: &[StatRow],
    buckets: &Buckets,
    color: bool,
    width: usize,
) -> io::Result<()> {
    let n = buckets.starts.len();
    let mut per: Vec<[u64; 5]> = vec![[0; 5]; n];
    for r in rows {
        let level = r
            .key
            .first()
            .and_then(|v| v.as_deref())
            .and_then(|l| l.parse::<Level>().ok())
            .unwrap_or(Level::Info);
        if let Some(p) = per.get_mut(r.bucket) {
            p[group(level)] += r.count;
        }
    }
    let totals: Vec<u64> = per.iter().map(|p| p.iter().sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let label_width = (0..n).map(|i| buckets.label(i).len()).max().unwrap_or(0);
    let cw = totals
        .iter()
        .map(|t| t.to_string().len())
        .max()
        .unwrap_or(1);
    let bar_width = width.saturating_sub(label_width + cw + 3).max(10);
    let mut line = String::new();
    for (i, p) in per.iter().enumerate() {
        line.clear();
        line.push_str(&format!(
            "{:label_width$} {:>cw$} ",
            buckets.label(i),
            totals[i]
        ));
        // Cumulative rounding keeps the bar's length true to the total.
        let mut drawn = 0usize;
        let mut sum = 0u64;
        for (g, &c) in p.iter().enumerate() {
            sum += c;
            let upto = ((sum as f64 / max as f64) * bar_width as f64).round() as usize;
            let len = upto.saturating_sub(drawn);
            drawn += len;
            if len == 0 {
                continue;
            }
            if color {
                line.push_str(&format!("{}", "█".repeat(len).style(style(g))));
            } else {
                line.extend(std::iter::repeat_n(GROUPS[g].1, len));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    // The key.
    line.clear();
    for (g, (name, ch)) in GROUPS.iter().enumerate() {
        if color {
            line.push_str(&format!("{} {name}  ", "█".style(style(g))));
        } else {
            line.push_str(&format!("{ch} {name}  "));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::buckets::Unit;

    #[test]
    fn table_json_and_chart() {
        let t0 = 1_790_000_000_000_000i64;
        let b = Buckets::new(Unit::Hour, t0, t0 + 2 * 3_600_000_000, true).unwrap();
        let rows = vec![
            StatRow {
                bucket: 0,
                key: vec![Some("err".into())],
                count: 5,
            },
            StatRow {
                bucket: 0,
                key: vec![Some("info".into())],
                count: 15,
            },
            StatRow {
                bucket: 1,
                key: vec![Some("info".into())],
                count: 10,
            },
        ];
        let mut out = Vec::new();
        table(&mut out, &rows, &[StatField::Level], Some(&b)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("BUCKET "), "{text}");
        assert!(text.contains("err"), "{text}");
        let mut out = Vec::new();
        json(&mut out, &rows, &[StatField::Level], Some(&b)).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["level"], "err");
        assert_eq!(first["count"], 5);
        assert!(first["bucket"].as_str().unwrap().ends_with("+00:00"));
        let mut out = Vec::new();
        chart(&mut out, &rows, &b, false, 61).unwrap(); // bars of 40
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Bucket 0 has 20 rows (the longest bar), a quarter of it err.
        let bar0 = lines[0].split_whitespace().last().unwrap();
        let bar1 = lines[1].split_whitespace().last().unwrap();
        assert_eq!(bar0.matches('#').count() * 4, bar0.len());
        assert_eq!(bar1.len() * 2, bar0.len());
        assert!(bar1.chars().all(|c| c == '-'));
    }
}
