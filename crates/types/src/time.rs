//! Calendar time in UTC, on `jiff`: the project's one date library (days, months, the
//! `strftime` that chat templates and file names use). Times are epoch milliseconds, the
//! one time representation in the store.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// The UTC calendar date (year, month, day) of an epoch-milliseconds time.
pub fn utc_date(epoch_ms: i64) -> (i64, u32, u32) {
    let date = zoned(epoch_ms).date();
    (
        i64::from(date.year()),
        date.month().unsigned_abs().into(),
        date.day().unsigned_abs().into(),
    )
}

/// `epoch_ms` formatted in UTC by a `strftime` format (`%Y-%m-%d`, `%A`, `%H:%M`, `%-d`,
/// `%3f`, ...). An unknown directive is an error naming it, never a panic.
pub fn format_utc(epoch_ms: i64, format: &str) -> Result<String, String> {
    jiff::fmt::strtime::format(format, &zoned(epoch_ms))
        .map_err(|e| format!("bad date format {format:?}: {e}"))
}

/// `2026-11-18`: the UTC day of `epoch_ms` (usage is counted per day).
pub fn utc_day(epoch_ms: i64) -> String {
    // A constant format of known directives: formatting cannot fail.
    zoned(epoch_ms).strftime("%Y-%m-%d").to_string()
}

/// `20261118T110640.123Z`: a compact UTC time to the millisecond, sortable as text.
pub fn utc_stamp(epoch_ms: i64) -> String {
    zoned(epoch_ms).strftime("%Y%m%dT%H%M%S.%3fZ").to_string()
}

/// The first instant (epoch ms) of the calendar month (UTC) after the one of `epoch_ms`.
pub fn next_month_start_ms(epoch_ms: i64) -> i64 {
    let first = zoned(epoch_ms).date().first_of_month();
    first
        .checked_add(1.month())
        .ok()
        .and_then(|d: Date| d.to_zoned(TimeZone::UTC).ok())
        .map_or(i64::MAX, |z| z.timestamp().as_millisecond())
}

/// A time in UTC; times outside jiff's range (years -9999..=9999) are clamped to it.
fn zoned(epoch_ms: i64) -> Zoned {
    let ts = Timestamp::from_millisecond(epoch_ms).unwrap_or(if epoch_ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    ts.to_zoned(TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), (1970, 1, 1));
        assert_eq!(utc_date(20_000 * DAY), (2024, 10, 4));
        assert_eq!(utc_date(-1), (1969, 12, 31));
        assert_eq!(utc_date(1_795_000_000_000), (2026, 11, 18));
        assert_eq!(utc_date(i64::MAX).0, 9999, "clamped, not a panic");
    }

    #[test]
    fn days_and_stamps() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(1_795_000_000_000), "2026-11-18");
        assert_eq!(utc_stamp(1_795_000_000_123), "20261118T110640.123Z");
        assert!(utc_stamp(1_795_000_000_000) < utc_stamp(1_795_000_001_000));
    }

    #[test]
    fn next_month() {
        let nov_18 = 1_795_000_000_000;
        assert_eq!(next_month_start_ms(nov_18), 1_796_083_200_000);
        let dec_31 = 20_088 * DAY; // 2024-12-31
        assert_eq!(utc_date(next_month_start_ms(dec_31)), (2025, 1, 1));
        let jan_31 = 20_119 * DAY; // 2025-01-31: no February 31st to trip over
        assert_eq!(utc_date(next_month_start_ms(jan_31)), (2025, 2, 1));
    }

    #[test]
    fn strftime_has_the_full_format_set() {
        let ms = 20_775 * DAY + 3_723_004; // Wednesday 2026-11-18, 01:02:03.004
        assert_eq!(format_utc(ms, "%Y-%m-%d").unwrap(), "2026-11-18");
        assert_eq!(
            format_utc(ms, "%A %-d %B %Y").unwrap(),
            "Wednesday 18 November 2026"
        );
        assert_eq!(format_utc(ms, "%a %b %e").unwrap(), "Wed Nov 18");
        assert_eq!(format_utc(ms, "%H:%M:%S").unwrap(), "01:02:03");
        assert_eq!(
            format_utc(ms, "%Y%m%dT%H%M%S.%3fZ").unwrap(),
            "20261118T010203.004Z"
        );
        assert_eq!(format_utc(ms, "%d %b %Y").unwrap(), "18 Nov 2026");
        assert_eq!(format_utc(ms, "%I %p, %j, %Z").unwrap(), "01 AM, 322, UTC");
        assert!(
            format_utc(ms, "%K").is_err(),
            "an unknown directive is an error"
        );
    }
}
