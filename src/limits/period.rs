//! Quota periods: each starts on `reset_day` (1–28, so it exists in every month) at 00:00 UTC
//! and ends where the next one starts.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

fn at(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    let date = NaiveDate::from_ymd_opt(year, month, day).unwrap_or(NaiveDate::MIN);
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn next_month(year: i32, month: u32) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

fn previous_month(year: i32, month: u32) -> (i32, u32) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

impl Period {
    /// The period containing `now` for `reset_day` (clamped to 1–28).
    pub fn containing(now: DateTime<Utc>, reset_day: u32) -> Period {
        let day = reset_day.clamp(1, 28);
        let (y, m) = (now.year(), now.month());
        let (sy, sm) = if now.day() >= day {
            (y, m)
        } else {
            previous_month(y, m)
        };
        let (ey, em) = next_month(sy, sm);
        Period {
            start: at(sy, sm, day),
            end: at(ey, em, day),
        }
    }

    /// A short stable name for keys: `20261101`.
    pub fn id(&self) -> String {
        self.number().to_string()
    }

    /// The same name as a number (`20261101`), for counter keys built per request.
    pub fn number(&self) -> u64 {
        let date = self.start.date_naive();
        date.year().max(0) as u64 * 10_000 + u64::from(date.month()) * 100 + u64::from(date.day())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn periods_in_short_long_and_leap_months_and_across_year_ends() {
        for (now, day, start, end) in [
            (
                "2026-11-26T23:59:59Z",
                1,
                "2026-11-01T00:00:00Z",
                "2026-12-01T00:00:00Z",
            ),
            (
                "2026-12-31T23:59:59Z",
                1,
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                "2027-01-01T00:00:00Z",
                1,
                "2027-01-01T00:00:00Z",
                "2027-02-01T00:00:00Z",
            ),
            (
                "2027-01-14T12:00:00Z",
                15,
                "2026-12-15T00:00:00Z",
                "2027-01-15T00:00:00Z",
            ),
            (
                "2027-01-15T00:00:00Z",
                15,
                "2027-01-15T00:00:00Z",
                "2027-02-15T00:00:00Z",
            ),
            (
                "2027-02-28T10:00:00Z",
                28,
                "2027-02-28T00:00:00Z",
                "2027-03-28T00:00:00Z",
            ),
            (
                "2028-02-29T10:00:00Z",
                28,
                "2028-02-28T00:00:00Z",
                "2028-03-28T00:00:00Z",
            ),
            (
                "2027-03-27T23:59:59Z",
                28,
                "2027-02-28T00:00:00Z",
                "2027-03-28T00:00:00Z",
            ),
            (
                "2026-04-30T23:00:00Z",
                28,
                "2026-04-28T00:00:00Z",
                "2026-05-28T00:00:00Z",
            ),
            (
                "2026-05-31T23:00:00Z",
                31,
                "2026-05-28T00:00:00Z",
                "2026-06-28T00:00:00Z",
            ),
        ] {
            let p = Period::containing(t(now), day);
            assert_eq!((p.start, p.end), (t(start), t(end)), "{now} day {day}");
            assert!(p.start <= t(now) && t(now) < p.end);
        }
        assert_eq!(
            Period::containing(t("2026-11-26T00:00:00Z"), 1).id(),
            "20261101"
        );
    }
}
