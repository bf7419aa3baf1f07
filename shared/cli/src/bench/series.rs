//! The synthetic tickers the benchmarks share, so that the many-ticker run,
//! the lake of the load comparison and the CSV psql copies are the same
//! (ticker, date) rows.

use std::process::Command;

use chrono::{Datelike, NaiveDate, Weekday};

/// The first session of every ten-year series.
pub const SERIES_FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(2015, 1, 2).expect("valid date");

/// Daily sessions in a year of synthetic bars.
pub const SESSIONS_PER_YEAR: usize = 252;

/// The `k`-th benchmark ticker (its synthetic series has seed `k`). The
/// first is AAPL, so the query (`WHERE ticker='AAPL'`) runs as written.
pub fn bench_ticker(k: usize) -> String {
    if k == 0 {
        "AAPL".to_string()
    } else {
        format!("B{k:04}")
    }
}

/// The weekday `sessions - 1` weekdays before `last` (a weekday): where a
/// series of `sessions` synthetic bars ending on `last` starts.
pub fn first_session(last: NaiveDate, sessions: usize) -> NaiveDate {
    let mut day = last;
    let mut counted = 1;
    while counted < sessions {
        day = day.pred_opt().expect("date in range");
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            counted += 1;
        }
    }
    day
}

/// `command` without the pipeline's settings from this process's
/// environment (a developer's `WAREHOUSE_URL`, `MARKET_DATA_API_RATE`…):
/// the benchmark sets what its child needs and nothing else leaks in.
pub fn without_pipeline_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let pipeline_setting = ["MARKET_DATA_", "WAREHOUSE_", "YAHOO_", "PG", "PARQUET_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || name == "ENVIRONMENT"
            || name == "AWS_ENDPOINT_URL";
        if pipeline_setting {
            command.env_remove(name);
        }
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_ending_on_a_monday_starts_sessions_weekdays_before() {
        let monday = NaiveDate::from_ymd_opt(2025, 6, 16).unwrap();
        assert_eq!(first_session(monday, 1), monday);
        assert_eq!(
            first_session(monday, 2),
            NaiveDate::from_ymd_opt(2025, 6, 13).unwrap()
        );
        let first = first_session(monday, 300);
        let bars = mdp_devtools::synthetic_bars(first, 300, 1);
        assert_eq!(bars.last().unwrap().date, monday);
    }

    #[test]
    fn the_first_ticker_is_aapl_and_the_others_are_distinct() {
        assert_eq!(bench_ticker(0), "AAPL");
        let names: std::collections::BTreeSet<String> = (0..500).map(bench_ticker).collect();
        assert_eq!(names.len(), 500);
    }
}
