//! The validate function: EventBridge Scheduler input (or the same JSON by
//! direct invoke) → one fetch message per valid ticker with work to do.

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use mdp_core::freshness::lake_freshness;
use mdp_core::logging::note_run;
use mdp_core::messages::{MessageError, ScheduleEvent, new_run_id};
use mdp_core::metrics::{Metric, Metrics, Stage};
use mdp_core::queue::Queue;
use mdp_core::validate::validate_stage;
use mdp_core::{Config, Lake, StageError};
use mdp_lambda::send_messages;
use serde::Serialize;

/// The `Stage` of this function's metrics and log lines.
pub const STAGE: Stage = Stage::Validate;

/// How long after the close the day's run has brought the data in (the
/// schedule runs two hours after it).
pub const FRESHNESS_GRACE: chrono::TimeDelta = chrono::TimeDelta::hours(2);

pub struct ValidateFunction {
    pub config: Config,
    pub lake: Lake,
    pub queue: Arc<dyn Queue>,
    pub fetch_queue_url: String,
    /// Where load-only steps go (tickers whose warehouse is behind the lake).
    pub load_queue_url: String,
}

/// What the invocation returns (and logs).
#[derive(Debug, Serialize)]
pub struct ValidateResponse {
    pub run_id: String,
    pub sent: Vec<String>,
    pub rejected: Vec<String>,
    pub up_to_date: Vec<String>,
    /// Tickers sent a load of the partitions their warehouse misses.
    pub catching_up: Vec<String>,
    /// Tickers whose state could not be read, with why (the others ran).
    pub failed: Vec<String>,
    /// A freshness check: the tickers not up to date, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<String>,
}

/// The scheduler input, or an EventBridge event carrying it in `detail`.
pub fn parse_event(payload: serde_json::Value) -> Result<ScheduleEvent, MessageError> {
    let inner = match payload.get("detail") {
        Some(detail) if payload.get("detail-type").is_some() => detail.clone(),
        _ => payload,
    };
    if inner.is_null() {
        return Ok(ScheduleEvent::default());
    }
    serde_json::from_value(inner).map_err(MessageError::Schedule)
}

impl ValidateFunction {
    /// One plan, its metrics dropped.
    pub async fn handle(
        &self,
        payload: serde_json::Value,
        today: NaiveDate,
    ) -> Result<ValidateResponse, StageError> {
        self.handle_metered(payload, today, &Metrics::new()).await
    }

    /// One plan, recording its metrics into `metrics` (the main flushes
    /// them as EMF after the invocation; a test reads them): its
    /// `StageDuration` and, when it planned, `TickersPlanned` (fetches
    /// sent), `TickersCaughtUp` (loads sent) and `TickersFailed` (tickers
    /// rejected as invalid or whose state could not be read).
    pub async fn handle_metered(
        &self,
        payload: serde_json::Value,
        today: NaiveDate,
        metrics: &Metrics,
    ) -> Result<ValidateResponse, StageError> {
        let clock = Instant::now();
        let result = if payload.get("check").and_then(|c| c.as_str()) == Some("freshness") {
            Ok(self.check_freshness(chrono::Utc::now(), metrics).await)
        } else {
            self.plan(payload, today, metrics).await
        };
        metrics.time(STAGE, Metric::StageDuration, clock.elapsed());
        result
    }

    /// The freshness check the second schedule invokes (`{"check":
    /// "freshness"}`, hours after the daily run): every default ticker the
    /// lake does not hold up to the last expected session, or whose last
    /// run failed or whose warehouse is behind, counts in `StaleTickers`
    /// (the alarm's metric). Nothing is sent.
    pub async fn check_freshness(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        metrics: &Metrics,
    ) -> ValidateResponse {
        let mut stale = Vec::new();
        for ticker in &self.config.default_tickers {
            let state = lake_freshness(&self.lake, ticker, now, FRESHNESS_GRACE).await;
            if !state.is_fresh() {
                let why = match (&state.state_error, state.lag_sessions) {
                    (Some(e), _) => e.clone(),
                    (None, None) => "no data in the lake".to_string(),
                    (None, Some(lag)) if lag > 0 => {
                        format!("{lag} sessions behind {}", state.expected)
                    }
                    _ if state.warehouse_behind => "the warehouse is behind the lake".into(),
                    _ => "its last run failed a stage".into(),
                };
                tracing::warn!(%ticker, %why, "ticker not up to date");
                stale.push(format!("{ticker}: {why}"));
            }
        }
        metrics.count(STAGE, Metric::StaleTickers, stale.len() as u64);
        ValidateResponse {
            run_id: String::new(),
            sent: Vec::new(),
            rejected: Vec::new(),
            up_to_date: Vec::new(),
            catching_up: Vec::new(),
            failed: Vec::new(),
            stale,
        }
    }

    async fn plan(
        &self,
        payload: serde_json::Value,
        today: NaiveDate,
        metrics: &Metrics,
    ) -> Result<ValidateResponse, StageError> {
        let event = parse_event(payload)?;
        let run_id = new_run_id();
        note_run(&run_id);
        metrics.property("run_id", &run_id);
        let plan = validate_stage(&self.lake, &self.config, &event, today, &run_id).await?;
        send_messages(self.queue.as_ref(), &self.load_queue_url, &plan.catch_up).await?;
        send_messages(self.queue.as_ref(), &self.fetch_queue_url, &plan.fetches).await?;
        for (ticker, error) in &plan.failed {
            tracing::error!(%ticker, error = %error.message(), "ticker not planned");
        }
        let count = |metric, n: usize| metrics.count(STAGE, metric, n as u64);
        count(Metric::TickersPlanned, plan.fetches.len());
        count(Metric::TickersCaughtUp, plan.catch_up.len());
        count(
            Metric::TickersFailed,
            plan.failed.len() + plan.rejected.len(),
        );
        let response = ValidateResponse {
            run_id,
            sent: plan.fetches.iter().map(|f| f.ticker.to_string()).collect(),
            rejected: plan.rejected.iter().map(|e| e.to_string()).collect(),
            up_to_date: plan.up_to_date.iter().map(|t| t.to_string()).collect(),
            catching_up: plan.catch_up.iter().map(|l| l.ticker.to_string()).collect(),
            failed: plan
                .failed
                .iter()
                .map(|(t, e)| format!("{t}: {}", e.message()))
                .collect(),
            stale: Vec::new(),
        };
        tracing::info!(run_id = %response.run_id, sent = response.sent.len(), rejected = response.rejected.len(), "run planned");
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_input_direct_invoke_and_eventbridge_events_are_read_alike() {
        let direct =
            parse_event(serde_json::json!({"tickers": ["AAPL", "msft"], "date": "2025-11-26"}))
                .unwrap();
        assert_eq!(
            direct.tickers.as_deref(),
            Some(&["AAPL".to_string(), "msft".to_string()][..])
        );
        assert_eq!(direct.date, Some("2025-11-26".parse().unwrap()));
        let wrapped = parse_event(serde_json::json!({
            "version": "0", "detail-type": "Scheduled Event", "source": "aws.events",
            "detail": {"tickers": ["AAPL", "msft"], "date": "2025-11-26"}
        }))
        .unwrap();
        assert_eq!(wrapped, direct);
        assert_eq!(
            parse_event(serde_json::Value::Null).unwrap(),
            ScheduleEvent::default()
        );
        assert_eq!(
            parse_event(serde_json::json!({})).unwrap(),
            ScheduleEvent::default()
        );
    }

    #[test]
    fn a_bad_schedule_input_is_permanent_and_says_why() {
        for bad in [
            serde_json::json!({"tickers": "AAPL"}),
            serde_json::json!({"date": "yesterday"}),
            serde_json::json!([1, 2]),
        ] {
            let err = StageError::from(parse_event(bad).unwrap_err());
            assert!(!err.is_transient());
            assert!(err.message().contains("invalid schedule input"), "{err}");
        }
    }

    #[tokio::test]
    async fn the_freshness_check_counts_stale_and_failed_tickers() {
        use std::sync::Arc;

        use mdp_core::lake::StageOutcome;
        use mdp_core::{LocalStore, Ticker, Watermark};

        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let config = Config::from_lookup(|k| {
            (k == "MARKET_DATA_DEFAULT_TICKERS").then(|| "MSFT,NVDA,AAPL,SIX".into())
        })
        .unwrap();
        let mark = |last: &str| Watermark {
            indicator_tail: None,
            quarantined_bars: 0,
            quality_findings: 0,
            last_date: last.parse().unwrap(),
            rows: 10,
            updated_at: chrono::Utc::now(),
            generation: 0,
            partitions: Default::default(),
            instrument_type: Some("EQUITY".into()),
        };
        let t = |s: &str| Ticker::parse(s).unwrap();
        lake.write_watermark(&t("MSFT"), &mark("2022-01-28"))
            .await
            .unwrap();
        lake.write_watermark(&t("NVDA"), &mark("2022-01-27"))
            .await
            .unwrap();
        lake.write_watermark(&t("AAPL"), &mark("2022-01-28"))
            .await
            .unwrap();
        lake.record_stage(
            &t("AAPL"),
            "20220128T230000Z-1",
            "load",
            StageOutcome::Failed,
            Some("locked".into()),
        )
        .await
        .unwrap();
        let function = ValidateFunction {
            config,
            lake,
            queue: Arc::new(mdp_core::queue::InMemoryQueue::new()),
            fetch_queue_url: "fetch".into(),
            load_queue_url: "load".into(),
        };
        let metrics = Metrics::new();
        // Saturday: Friday the 28th is the last expected session.
        let now = "2022-01-29T12:00:00Z".parse().unwrap();
        let response = function.check_freshness(now, &metrics).await;
        let stale: Vec<&str> = response
            .stale
            .iter()
            .map(|s| s.split(':').next().unwrap())
            .collect();
        assert_eq!(stale, ["NVDA", "AAPL", "SIX"], "{:?}", response.stale);
        assert!(response.stale[0].contains("1 sessions behind 2022-01-28"));
        assert_eq!(metrics.total(STAGE, Metric::StaleTickers), 3.0);
    }
}
