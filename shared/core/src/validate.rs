//! The validate stage: normalise the requested tickers and plan each one's
//! fetch from its watermark (DESIGN.md section 1 step 1, section 8).

use chrono::NaiveDate;

use crate::config::Config;
use crate::dates::{DateRequest, DateRequestError, plan_fetch};
use crate::error::StageError;
use crate::lake::{Lake, StoreError};
use crate::messages::{FetchRequest, LoadRequest, MESSAGE_VERSION, ScheduleEvent};
use crate::ticker::{Ticker, TickerError, normalise_tickers};

#[derive(Debug, Default)]
pub struct ValidateOutcome {
    /// One fetch message per valid ticker with something to fetch.
    pub fetches: Vec<FetchRequest>,
    /// Requested entries that are not valid tickers (the rest still run).
    pub rejected: Vec<TickerError>,
    /// Valid tickers whose watermark already reaches the target date.
    pub up_to_date: Vec<Ticker>,
    /// Load-only steps: tickers whose lake holds partitions the warehouse has
    /// not loaded (a load that failed or was killed), each naming them.
    pub catch_up: Vec<LoadRequest>,
    /// Tickers whose state could not be read: they fail alone, the others run.
    pub failed: Vec<(Ticker, StageError)>,
}

/// A request that plans nothing at all (never retried).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Dates(#[from] DateRequestError),
    #[error("no valid ticker in the request{}", first_rejection(.0))]
    NoTicker(Vec<TickerError>),
}

fn first_rejection(rejected: &[TickerError]) -> String {
    rejected
        .first()
        .map(|e| format!(": {e}"))
        .unwrap_or_default()
}

impl From<ValidateError> for StageError {
    fn from(e: ValidateError) -> Self {
        StageError::with_source(crate::ErrorClass::Permanent, e)
    }
}

/// Plans the run. `today` is the default target date (today in New York).
/// Fails only when the event as a whole is invalid (dates out of range, start
/// after end, no valid ticker); a ticker whose state cannot be read fails
/// alone, with the object named and how to repair it.
pub async fn validate_stage(
    lake: &Lake,
    config: &Config,
    event: &ScheduleEvent,
    today: NaiveDate,
    run_id: &str,
) -> Result<ValidateOutcome, ValidateError> {
    let request = DateRequest::from_parts(event.date, event.start, event.end, today)?;
    let (tickers, rejected) = match &event.tickers {
        Some(list) => normalise_tickers(list),
        None => (config.default_tickers.clone(), Vec::new()),
    };
    for bad in &rejected {
        tracing::warn!(ticker = %bad.input, "{bad}");
    }
    if tickers.is_empty() {
        return Err(ValidateError::NoTicker(rejected));
    }
    let mut outcome = ValidateOutcome {
        rejected,
        ..ValidateOutcome::default()
    };
    for ticker in tickers {
        match plan_ticker(lake, config, request, &ticker, run_id).await {
            Ok(plan) => {
                if let Some(load) = plan.catch_up {
                    tracing::warn!(%ticker, partitions = load.partition_keys.len(), "the warehouse is behind the lake: loading what it misses");
                    outcome.catch_up.push(load);
                }
                match plan.fetch {
                    Some(fetch) => outcome.fetches.push(fetch),
                    None => {
                        tracing::info!(%ticker, "watermark already at or past the target date: nothing to fetch");
                        outcome.up_to_date.push(ticker);
                    }
                }
            }
            Err(e) => {
                tracing::error!(%ticker, error = %e.message(), "cannot plan this ticker");
                outcome.failed.push((ticker, e));
            }
        }
    }
    Ok(outcome)
}

struct TickerPlan {
    fetch: Option<FetchRequest>,
    catch_up: Option<LoadRequest>,
}

async fn plan_ticker(
    lake: &Lake,
    config: &Config,
    request: DateRequest,
    ticker: &Ticker,
    run_id: &str,
) -> Result<TickerPlan, StageError> {
    let repair = |e: StoreError| {
        StageError::from(e).context(format!(
            "reading the state of {ticker} (repair it with `mdp state rebuild --tickers {ticker}`, \
             which rebuilds the watermark from the curated partitions)"
        ))
    };
    let watermark = lake.read_watermark(ticker).await.map_err(repair)?;
    let loaded = lake.read_load_mark(ticker).await.map_err(repair)?;
    let fetch = plan_fetch(
        request,
        watermark.as_ref().map(|w| w.last_date),
        config.backfill_days,
    )
    .map(|plan| FetchRequest {
        v: MESSAGE_VERSION,
        run_id: run_id.to_string(),
        ticker: ticker.clone(),
        start: plan.start,
        end: plan.end,
        mode: plan.mode,
    });
    let catch_up = watermark.and_then(|mark| {
        let loaded = loaded.map_or(0, |l| l.generation);
        let years = mark.years_after(loaded);
        (!years.is_empty()).then(|| LoadRequest {
            v: MESSAGE_VERSION,
            run_id: run_id.to_string(),
            ticker: ticker.clone(),
            partition_keys: years
                .iter()
                .map(|y| Lake::curated_key(ticker, *y))
                .collect(),
            rows: 0,
            min_date: None,
            max_date: None,
        })
    });
    Ok(TickerPlan { fetch, catch_up })
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
            indicator_tail: None,
            quarantined_bars: 0,
            quality_findings: 0,
            last_date: d(last),
            rows: 5,
            updated_at: Utc::now(),
            generation: 0,
            partitions: Default::default(),
            instrument_type: None,
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
        assert!(!StageError::from(err).is_transient());
    }

    #[tokio::test]
    async fn a_request_without_a_valid_ticker_plans_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let config = Config::from_lookup(|_| None).unwrap();
        for tickers in [
            vec![],
            vec!["".to_string()],
            vec!["..".into(), "no way".into()],
        ] {
            let event = ScheduleEvent {
                tickers: Some(tickers.clone()),
                ..Default::default()
            };
            let err = validate_stage(&lake, &config, &event, d("2025-11-26"), "r")
                .await
                .unwrap_err();
            assert!(
                err.to_string().starts_with("no valid ticker"),
                "{tickers:?}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn a_corrupt_watermark_fails_its_ticker_only_and_names_the_repair() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let config = Config::from_lookup(|_| None).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("state/ticker=MSFT.json"), b"{not json").unwrap();
        let event = ScheduleEvent {
            tickers: Some(vec!["MSFT".into(), "AAPL".into()]),
            ..Default::default()
        };
        let out = validate_stage(&lake, &config, &event, d("2025-11-26"), "r")
            .await
            .unwrap();
        assert_eq!(out.fetches.len(), 1);
        assert_eq!(out.fetches[0].ticker.as_str(), "AAPL");
        let (ticker, err) = &out.failed[0];
        assert_eq!(ticker.as_str(), "MSFT");
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.contains("state/ticker=MSFT.json")
                && text.contains("mdp state rebuild --tickers MSFT"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_warehouse_behind_the_lake_gets_a_load_of_what_it_misses() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let config = Config::from_lookup(|_| None).unwrap();
        let msft = Ticker::parse("MSFT").unwrap();
        let mark = Watermark {
            indicator_tail: None,
            quarantined_bars: 0,
            quality_findings: 0,
            last_date: d("2025-01-03"),
            rows: 300,
            updated_at: Utc::now(),
            generation: 4,
            partitions: [(2023, 1), (2024, 4), (2025, 4)].into(),
            instrument_type: None,
        };
        lake.write_watermark(&msft, &mark).await.unwrap();
        let event = ScheduleEvent {
            tickers: Some(vec!["MSFT".into()]),
            date: Some(d("2025-01-03")),
            ..Default::default()
        };
        // Never loaded: every partition; loaded up to generation 1: the two
        // years the failed load of generation 4 rewrote, across the year boundary.
        let out = validate_stage(&lake, &config, &event, d("2025-01-03"), "r")
            .await
            .unwrap();
        assert_eq!(out.catch_up[0].partition_keys.len(), 3);
        assert_eq!(out.up_to_date, vec![msft.clone()]);
        let at = Utc::now();
        lake.write_load_mark(
            &msft,
            &crate::lake::LoadMark {
                generation: 1,
                loaded_at: at,
            },
        )
        .await
        .unwrap();
        let out = validate_stage(&lake, &config, &event, d("2025-01-03"), "r")
            .await
            .unwrap();
        assert_eq!(
            out.catch_up[0].partition_keys,
            [
                Lake::curated_key(&msft, 2024),
                Lake::curated_key(&msft, 2025)
            ]
        );
        lake.write_load_mark(
            &msft,
            &crate::lake::LoadMark {
                generation: 4,
                loaded_at: at,
            },
        )
        .await
        .unwrap();
        let out = validate_stage(&lake, &config, &event, d("2025-01-03"), "r")
            .await
            .unwrap();
        assert!(out.catch_up.is_empty());
    }
}
