//! The NYSE/Nasdaq trading calendar, from 1970 on: weekends, the exchange
//! holidays by their rules (with the observed-day rules and the dates the
//! rules changed), the one-off closures, and the early (13:00) closes. It
//! says how many sessions a ticker is behind (`mdp status`) and, later,
//! which sessions a series misses.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// Closures outside the holiday rules (funerals of presidents, storms,
/// blackouts, the September 11 attacks).
const SPECIAL_CLOSURES: [(i32, u32, u32); 15] = [
    (1972, 12, 28),
    (1973, 1, 25),
    (1977, 7, 14),
    (1985, 9, 27),
    (1994, 4, 27),
    (2001, 9, 11),
    (2001, 9, 12),
    (2001, 9, 13),
    (2001, 9, 14),
    (2004, 6, 11),
    (2007, 1, 2),
    (2012, 10, 29),
    (2012, 10, 30),
    (2018, 12, 5),
    (2025, 1, 9),
];

/// Election days were holidays in presidential years until 1980.
const ELECTION_DAYS: [(i32, u32, u32); 3] = [(1972, 11, 7), (1976, 11, 2), (1980, 11, 4)];

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid calendar date")
}

/// The `n`-th (1-based) `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u32) -> NaiveDate {
    let first = date(year, month, 1);
    let offset = (7 + weekday.num_days_from_monday() - first.weekday().num_days_from_monday()) % 7;
    first + Duration::days(i64::from(offset + 7 * (n - 1)))
}

/// The last `weekday` of a month.
fn last_weekday(year: i32, month: u32, weekday: Weekday) -> NaiveDate {
    let next_month = if month == 12 {
        date(year + 1, 1, 1)
    } else {
        date(year, month + 1, 1)
    };
    let last = next_month - Duration::days(1);
    let back = (7 + last.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
    last - Duration::days(i64::from(back))
}

/// Easter Sunday (Gregorian computus).
fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    date(year, month as u32, day as u32)
}

/// A fixed-date holiday on the weekday it is observed: Saturday → Friday,
/// Sunday → Monday.
fn observed(day: NaiveDate) -> NaiveDate {
    match day.weekday() {
        Weekday::Sat => day - Duration::days(1),
        Weekday::Sun => day + Duration::days(1),
        _ => day,
    }
}

/// The exchange holidays of a year, by rule.
pub fn holidays(year: i32) -> Vec<NaiveDate> {
    let mut days = Vec::with_capacity(12);
    // New Year's Day on a Saturday is not moved to the Friday before.
    let new_year = date(year, 1, 1);
    if new_year.weekday() != Weekday::Sat {
        days.push(observed(new_year));
    }
    if year >= 1998 {
        days.push(nth_weekday(year, 1, Weekday::Mon, 3)); // Martin Luther King Jr. Day
    }
    days.push(if year >= 1971 {
        nth_weekday(year, 2, Weekday::Mon, 3) // Washington's Birthday
    } else {
        observed(date(year, 2, 22))
    });
    days.push(easter(year) - Duration::days(2)); // Good Friday
    days.push(if year >= 1971 {
        last_weekday(year, 5, Weekday::Mon) // Memorial Day
    } else {
        observed(date(year, 5, 30))
    });
    if year >= 2022 {
        days.push(observed(date(year, 6, 19))); // Juneteenth
    }
    days.push(observed(date(year, 7, 4)));
    days.push(nth_weekday(year, 9, Weekday::Mon, 1)); // Labor Day
    days.push(nth_weekday(year, 11, Weekday::Thu, 4)); // Thanksgiving
    days.push(observed(date(year, 12, 25)));
    days.extend(
        SPECIAL_CLOSURES
            .iter()
            .chain(&ELECTION_DAYS)
            .filter(|(y, _, _)| *y == year)
            .map(|(y, m, d)| date(*y, *m, *d)),
    );
    days.sort();
    days
}

/// Whether the exchange trades on `day`.
pub fn is_session(day: NaiveDate) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !holidays(day.year()).contains(&day)
}

/// Whether `day` is a session that closes at 13:00 New York time: the day
/// before Independence Day, the day after Thanksgiving, Christmas Eve.
pub fn is_early_close(day: NaiveDate) -> bool {
    if !is_session(day) {
        return false;
    }
    let year = day.year();
    let thanksgiving = nth_weekday(year, 11, Weekday::Thu, 4);
    day == date(year, 7, 3) || day == thanksgiving + Duration::days(1) || day == date(year, 12, 24)
}

/// The last session on or before `day`.
pub fn session_on_or_before(day: NaiveDate) -> NaiveDate {
    let mut d = day;
    while !is_session(d) {
        d -= Duration::days(1);
    }
    d
}

/// Sessions strictly after `from` up to and including `to` (0 when `to` is
/// not after `from`): how many sessions a series ending at `from` misses.
pub fn sessions_after(from: NaiveDate, to: NaiveDate) -> u32 {
    let mut n = 0;
    let mut d = from + Duration::days(1);
    while d <= to {
        if is_session(d) {
            n += 1;
        }
        d += Duration::days(1);
    }
    n
}

/// Every session of a year.
pub fn sessions_in(year: i32) -> Vec<NaiveDate> {
    let mut d = date(year, 1, 1);
    let mut out = Vec::with_capacity(253);
    while d.year() == year {
        if is_session(d) {
            out.push(d);
        }
        d += Duration::days(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions per year as the exchange published them (independent of
    /// these rules): they catch a missing or extra holiday.
    #[test]
    fn sessions_per_year_match_the_exchange() {
        for (year, sessions) in [
            (2001, 248),
            (2004, 252),
            (2007, 251),
            (2012, 250),
            (2016, 252),
            (2018, 251),
            (2019, 252),
            (2020, 253),
            (2021, 252),
            (2022, 251),
            (2023, 250),
            (2024, 252),
            (2025, 250),
        ] {
            assert_eq!(sessions_in(year).len(), sessions, "{year}");
        }
    }

    #[test]
    fn rules_and_their_changes() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(easter(2024), d("2024-03-31"));
        assert_eq!(easter(2025), d("2025-04-20"));
        assert!(!is_session(d("2024-03-29")), "Good Friday");
        assert!(
            !is_session(d("2022-06-20")),
            "Juneteenth observed on Monday"
        );
        assert!(is_session(d("2021-06-18")), "no Juneteenth before 2022");
        assert!(
            is_session(d("2021-12-31")),
            "New Year on Saturday is not observed"
        );
        assert!(
            !is_session(d("2023-01-02")),
            "New Year on Sunday moves to Monday"
        );
        assert!(
            !is_session(d("2020-07-03")),
            "July 4 on Saturday moves to Friday"
        );
        assert!(is_session(d("1997-01-20")), "no MLK day before 1998");
        assert!(!is_session(d("1998-01-19")));
        assert!(
            !is_session(d("2025-01-09")),
            "day of mourning for President Carter"
        );
        assert!(is_early_close(d("2024-11-29")) && is_early_close(d("2024-12-24")));
        assert!(is_early_close(d("2025-07-03")) && !is_early_close(d("2025-07-04")));
        assert_eq!(session_on_or_before(d("2024-12-29")), d("2024-12-27"));
        assert_eq!(sessions_after(d("2024-12-20"), d("2024-12-27")), 4);
        assert_eq!(sessions_after(d("2024-12-27"), d("2024-12-27")), 0);
        assert_eq!(sessions_after(d("2024-12-27"), d("2024-12-20")), 0);
    }
}
