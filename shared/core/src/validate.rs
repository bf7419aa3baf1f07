//! The validate stage: normalise the requested tickers and plan each one's
//! fetch from its watermark (DESIGN.md section 1 step 1, section 8).

use chrono::NaiveDate;

use crate::config::Config;
use crate::dates::{DateRequest, plan_fetch};
use crate::error::StageError;
use crate::lake::Lake;
use crate::messages::{FetchRequest, MESSAGE_VERSION, ScheduleEvent};
use crate::ticker::{Ticker, TickerError, normalise_tickers};

#[derive(Debug, Default)]
pub struct ValidateOutcome {
    /// One fetch message per valid ticker with something to fetch.
    pub fetches: Vec<FetchRequest>,
    /// Requested entries that are not valid tickers (the rest still run).
    pub rejected: Vec<TickerError>,
    /// Valid tickers whose watermark already reaches the target date.
    pub up_to_date: Vec<Ticker>,
}

/// Plans the run. `today` is the default target date (today in New York).
/// Fails only when the event as a whole is invalid (such as start after end);
/// a watermark that cannot be read fails with its own class.
pub async fn validate_stage(
    lake: &Lake,
    config: &Config,
    event: &ScheduleEvent,
    today: NaiveDate,
    run_id: &str,
) -> Result<ValidateOutcome, StageError> {
    let request = DateRequest::from_parts(event.date, event.start, event.end, today)?;
    let (tickers, rejected) = match &event.tickers {
        Some(list) => normalise_tickers(list),
        None => (config.default_tickers.clone(), Vec::new()),
    };
    for bad in &rejected {
        tracing::warn!(ticker = %bad.input, "{bad}");
    }
    let mut outcome = ValidateOutcome {
        rejected,
        ..ValidateOutcome::default()
    };
    for ticker in tickers {
        let watermark = lake.read_watermark(&ticker).await.map_err(|e| {
            StageError::from(e).context(format!("reading the watermark of {ticker}"))
        })?;
        match plan_fetch(
            request,
            watermark.map(|w| w.last_date),
            config.backfill_days,
        ) {
            Some(plan) => outcome.fetches.push(FetchRequest {
                v: MESSAGE_VERSION,
                run_id: run_id.to_string(),
                ticker,
                start: plan.start,
                end: plan.end,
                mode: plan.mode,
            }),
            None => {
                tracing::info!(%ticker, "watermark already at or past the target date: nothing to fetch");
                outcome.up_to_date.push(ticker);
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::dates::FetchMode;
    use crate::lake::{LocalStore, Watermark};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn plans_backfill_incremental_and_skips_bad_or_current_tickers() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let config =
            Config::from_lookup(|k| (k == "MARKET_DATA_BACKFILL_DAYS").then(|| "10".to_string()))
                .unwrap();
        let mark = |last: &str| Watermark {
            last_date: d(last),
            rows: 5,
            updated_at: Utc::now(),
        };
        lake.write_watermark(&Ticker::parse("MSFT").unwrap(), &mark("2025-06-25"))
            .await
            .unwrap();
        lake.write_watermark(&Ticker::parse("NVDA").unwrap(), &mark("2025-06-30"))
            .await
            .unwrap();
        let event = ScheduleEvent {
            tickers: Some(vec![
                "aapl".into(),
                "msft".into(),
                "not valid!".into(),
                "NVDA".into(),
                "AAPL".into(),
            ]),
            date: Some(d("2025-06-30")),
            ..ScheduleEvent::default()
        };
        let out = validate_stage(&lake, &config, &event, d("2025-07-04"), "run-1")
            .await
            .unwrap();
        assert_eq!(out.fetches.len(), 2);
        let aapl = &out.fetches[0];
        assert_eq!(
            (aapl.ticker.as_str(), aapl.start, aapl.end, aapl.mode),
            (
                "AAPL",
                d("2025-06-21"),
                d("2025-06-30"),
                FetchMode::Backfill
            )
        );
        let msft = &out.fetches[1];
        assert_eq!(
            (msft.ticker.as_str(), msft.start, msft.end, msft.mode),
            (
                "MSFT",
                d("2025-06-26"),
                d("2025-06-30"),
                FetchMode::Incremental
            )
        );
        assert!(out.fetches.iter().all(|f| f.run_id == "run-1" && f.v == 1));
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].input, "not valid!");
        assert_eq!(out.up_to_date, [Ticker::parse("NVDA").unwrap()]);
    }

    #[tokio::test]
    async fn default_tickers_and_today_apply_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let config = Config::from_lookup(|k| {
            (k == "MARKET_DATA_DEFAULT_TICKERS").then(|| "MSFT,^GSPC".to_string())
        })
        .unwrap();
        let out = validate_stage(
            &lake,
            &config,
            &ScheduleEvent::default(),
            d("2025-11-26"),
            "r",
        )
        .await
        .unwrap();
        let names: Vec<&str> = out.fetches.iter().map(|f| f.ticker.as_str()).collect();
        assert_eq!(names, ["MSFT", "^GSPC"]);
        assert!(out.fetches.iter().all(|f| f.end == d("2025-11-26")));
        assert_eq!(out.fetches[0].start, d("2025-07-30"));
    }

    #[tokio::test]
    async fn inverted_range_is_a_permanent_error() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let config = Config::from_lookup(|_| None).unwrap();
        let event = ScheduleEvent {
            start: Some(d("2025-02-01")),
            end: Some(d("2025-01-01")),
            ..Default::default()
        };
        let err = validate_stage(&lake, &config, &event, d("2025-11-26"), "r")
            .await
            .unwrap_err();
        assert!(!err.is_transient());
    }
}
