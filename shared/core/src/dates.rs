//! Which calendar days to fetch for a ticker (DESIGN.md section 1, step 1).

use chrono::{Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StageError;

/// The time zone whose calendar decides "today": the pipeline runs after the US close.
pub const MARKET_TIME_ZONE: chrono_tz::Tz = chrono_tz::America::New_York;

/// Today's date in America/New_York.
pub fn today_in_new_york() -> NaiveDate {
    Utc::now().with_timezone(&MARKET_TIME_ZONE).date_naive()
}

/// What the caller asked for, before looking at any ticker's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateRequest {
    /// Fetch what is missing up to this date: a backfill when the ticker has
    /// no history, else the days after its watermark.
    UpTo(NaiveDate),
    /// Exactly this inclusive range, whatever is stored.
    Range { start: NaiveDate, end: NaiveDate },
}

/// Dates that do not make a request (never retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateRequestError {
    #[error("give either date or start/end, not both")]
    DateAndRange,
    #[error("start {start} is after end {end}")]
    StartAfterEnd { start: NaiveDate, end: NaiveDate },
    #[error(
        "{what} {date} is outside {earliest} ..= {latest} (1970-01-01 to tomorrow in New York)"
    )]
    OutOfRange {
        what: &'static str,
        date: NaiveDate,
        earliest: NaiveDate,
        latest: NaiveDate,
    },
}

/// The first date a request may name: daily bars before the Unix epoch do
/// not exist in the chart API, and timestamps before it are not planned for.
pub const EARLIEST_DATE: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

impl From<DateRequestError> for StageError {
    fn from(e: DateRequestError) -> Self {
        StageError::with_source(crate::ErrorClass::Permanent, e)
    }
}

impl DateRequest {
    /// Builds a request from the optional `date`, `start`, `end` of a schedule
    /// event or the command line; `today` stands in for a missing target date.
    pub fn from_parts(
        date: Option<NaiveDate>,
        start: Option<NaiveDate>,
        end: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<DateRequest, DateRequestError> {
        if date.is_some() && (start.is_some() || end.is_some()) {
            return Err(DateRequestError::DateAndRange);
        }
        // Tomorrow, not today: a run after midnight UTC but before midnight
        // in New York, or an exchange a time zone ahead, may name it.
        let latest = today.succ_opt().unwrap_or(today);
        for (what, value) in [("date", date), ("start", start), ("end", end)] {
            if let Some(value) = value
                && !(EARLIEST_DATE..=latest).contains(&value)
            {
                return Err(DateRequestError::OutOfRange {
                    what,
                    date: value,
                    earliest: EARLIEST_DATE,
                    latest,
                });
            }
        }
        match (start, end) {
            (Some(start), end) => {
                let end = end.unwrap_or(today);
                if start > end {
                    return Err(DateRequestError::StartAfterEnd { start, end });
                }
                Ok(DateRequest::Range { start, end })
            }
            (None, Some(end)) => Ok(DateRequest::UpTo(end)),
            (None, None) => Ok(DateRequest::UpTo(date.unwrap_or(today))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FetchMode {
    Backfill,
    Incremental,
}

/// The inclusive range to fetch for one ticker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPlan {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub mode: FetchMode,
}

/// Plans one ticker's fetch. `None` means nothing to do: the watermark is
/// already at or past the target date.
///
/// A backfill spans `backfill_days` calendar days ending on the target date
/// (both ends included). An explicit range counts as a backfill when the
/// ticker has no history yet and as incremental otherwise; it is fetched
/// whole either way.
pub fn plan_fetch(
    request: DateRequest,
    watermark: Option<NaiveDate>,
    backfill_days: u32,
) -> Option<FetchPlan> {
    let mode = if watermark.is_some() {
        FetchMode::Incremental
    } else {
        FetchMode::Backfill
    };
    match request {
        DateRequest::Range { start, end } => Some(FetchPlan { start, end, mode }),
        DateRequest::UpTo(end) => match watermark {
            None => {
                let span = u64::from(backfill_days.max(1) - 1);
                let start = end
                    .checked_sub_days(Days::new(span))
                    .unwrap_or(NaiveDate::MIN);
                Some(FetchPlan { start, end, mode })
            }
            Some(last) if last >= end => None,
            Some(last) => Some(FetchPlan {
                start: last.succ_opt()?,
                end,
                mode,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn backfill_spans_exactly_the_configured_calendar_days() {
        let plan = plan_fetch(DateRequest::UpTo(d("2025-06-30")), None, 120).unwrap();
        assert_eq!(plan.mode, FetchMode::Backfill);
        assert_eq!(plan.end, d("2025-06-30"));
        assert_eq!(plan.start, d("2025-03-03"));
        assert_eq!((plan.end - plan.start).num_days() + 1, 120);
        let one = plan_fetch(DateRequest::UpTo(d("2025-06-30")), None, 1).unwrap();
        assert_eq!((one.start, one.end), (d("2025-06-30"), d("2025-06-30")));
    }

    #[test]
    fn incremental_starts_the_day_after_the_watermark() {
        let plan = plan_fetch(
            DateRequest::UpTo(d("2025-07-07")),
            Some(d("2025-07-03")),
            120,
        )
        .unwrap();
        assert_eq!(plan.mode, FetchMode::Incremental);
        assert_eq!((plan.start, plan.end), (d("2025-07-04"), d("2025-07-07")));
    }

    #[test]
    fn nothing_to_do_when_watermark_reached_target() {
        assert_eq!(
            plan_fetch(
                DateRequest::UpTo(d("2025-07-03")),
                Some(d("2025-07-03")),
                120
            ),
            None
        );
        assert_eq!(
            plan_fetch(
                DateRequest::UpTo(d("2025-07-03")),
                Some(d("2025-07-09")),
                120
            ),
            None
        );
    }

    #[test]
    fn explicit_range_overrides_watermark_and_backfill() {
        let req = DateRequest::Range {
            start: d("2021-02-01"),
            end: d("2021-03-01"),
        };
        let with_history = plan_fetch(req, Some(d("2025-01-01")), 120).unwrap();
        assert_eq!(
            (with_history.start, with_history.end),
            (d("2021-02-01"), d("2021-03-01"))
        );
        assert_eq!(with_history.mode, FetchMode::Incremental);
        assert_eq!(plan_fetch(req, None, 5).unwrap().mode, FetchMode::Backfill);
    }

    #[test]
    fn request_parts_are_checked() {
        let today = d("2025-11-26");
        assert_eq!(
            DateRequest::from_parts(None, None, None, today).unwrap(),
            DateRequest::UpTo(today)
        );
        assert_eq!(
            DateRequest::from_parts(Some(d("2025-01-02")), None, None, today).unwrap(),
            DateRequest::UpTo(d("2025-01-02"))
        );
        assert_eq!(
            DateRequest::from_parts(None, Some(d("2025-01-02")), None, today).unwrap(),
            DateRequest::Range {
                start: d("2025-01-02"),
                end: today
            }
        );
        let err =
            DateRequest::from_parts(None, Some(d("2025-02-02")), Some(d("2025-01-02")), today)
                .unwrap_err();
        assert!(err.to_string().contains("after end"), "{err}");
        assert!(!StageError::from(err).is_transient());
        assert!(DateRequest::from_parts(Some(today), Some(today), None, today).is_err());
        // Dates outside 1970-01-01 ..= tomorrow are refused, whichever names them.
        let tomorrow = today.succ_opt().unwrap();
        assert!(DateRequest::from_parts(Some(tomorrow), None, None, today).is_ok());
        assert!(DateRequest::from_parts(None, Some(d("1970-01-01")), None, today).is_ok());
        for (date, start, end) in [
            (Some(tomorrow.succ_opt().unwrap()), None, None),
            (None, Some(d("1800-01-01")), None),
            (None, Some(d("1969-12-31")), Some(today)),
            (
                None,
                None,
                Some(NaiveDate::from_ymd_opt(10000, 1, 1).unwrap()),
            ),
        ] {
            let err = DateRequest::from_parts(date, start, end, today).unwrap_err();
            assert!(matches!(err, DateRequestError::OutOfRange { .. }), "{err}");
            assert!(err.to_string().contains("outside 1970-01-01"), "{err}");
        }
    }
}
