//! The report function: regenerates the offline HTML report of the lake
//! (mdp-report) under its `reports/` prefix, next to the data it shows.

use chrono::{DateTime, Utc};
use mdp_core::messages::MessageError;
use mdp_core::ticker::normalise_tickers;
use mdp_core::{Lake, StageError};
use mdp_report::{LAKE_REPORT_PREFIX, write_report};
use serde::{Deserialize, Serialize};

/// The invocation's input: `{}` (the schedule's: every ticker with curated
/// data) or `{"tickers": ["AAPL", "^GSPC"]}`; an EventBridge event may carry
/// it in `detail`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportEvent {
    #[serde(default)]
    pub tickers: Option<Vec<String>>,
}

/// What the invocation returns (and logs).
#[derive(Debug, Serialize)]
pub struct ReportResponse {
    /// `s3://BUCKET/lake/reports/index.html`.
    pub index: String,
    pub tickers: usize,
    /// Tickers whose data could not be read whole (their pages say what).
    pub problems: Vec<String>,
    /// Requested tickers that are not tickers, with why (the others ran).
    pub rejected: Vec<String>,
}

pub fn parse_event(payload: serde_json::Value) -> Result<ReportEvent, StageError> {
    let inner = match payload.get("detail") {
        Some(detail) if payload.get("detail-type").is_some() => detail.clone(),
        _ => payload,
    };
    if inner.is_null() {
        return Ok(ReportEvent::default());
    }
    serde_json::from_value(inner)
        .map_err(|e| StageError::from(MessageError::Schedule(e)).context("the report event"))
}

pub struct ReportFunction {
    pub lake: Lake,
}

impl ReportFunction {
    /// One report. A malformed event or a list of only invalid tickers is a
    /// permanent failure; the lake's errors keep their class.
    pub async fn handle(
        &self,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<ReportResponse, StageError> {
        let event = parse_event(payload)?;
        let (tickers, rejected) = match &event.tickers {
            None => (None, Vec::new()),
            Some(list) => {
                let (valid, rejected) = normalise_tickers(list);
                let rejected: Vec<String> = rejected.iter().map(|e| e.to_string()).collect();
                if valid.is_empty() {
                    return Err(StageError::permanent(format!(
                        "no valid ticker in the report event: {}",
                        rejected.join("; ")
                    )));
                }
                (Some(valid), rejected)
            }
        };
        let outcome = write_report(
            &self.lake,
            tickers,
            self.lake.store(),
            LAKE_REPORT_PREFIX,
            now,
        )
        .await?;
        let response = ReportResponse {
            index: outcome.index_uri,
            tickers: outcome.tickers,
            problems: outcome.problems,
            rejected,
        };
        tracing::info!(
            index = %response.index,
            tickers = response.tickers,
            problems = response.problems.len(),
            "report written"
        );
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mdp_core::LocalStore;
    use serde_json::json;

    use super::*;

    #[test]
    fn events() {
        assert!(parse_event(json!(null)).unwrap().tickers.is_none());
        assert!(parse_event(json!({})).unwrap().tickers.is_none());
        let e = parse_event(json!({"tickers": ["AAPL", "^GSPC"]})).unwrap();
        assert_eq!(e.tickers.unwrap(), ["AAPL", "^GSPC"]);
        let wrapped = json!({"detail-type": "Scheduled Event", "detail": {"tickers": ["MSFT"]}});
        assert_eq!(parse_event(wrapped).unwrap().tickers.unwrap(), ["MSFT"]);
        for bad in [
            json!({"tickers": "AAPL"}),
            json!({"ticker": ["AAPL"]}),
            json!([1]),
        ] {
            let e = parse_event(bad).unwrap_err();
            assert!(!e.is_transient());
        }
    }

    #[tokio::test]
    async fn writes_the_report_into_the_lake() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let function = ReportFunction { lake };
        let now = chrono::Utc::now();
        let response = function
            .handle(json!({"tickers": ["^GSPC", "no way!"]}), now)
            .await
            .unwrap();
        assert_eq!(response.tickers, 1);
        assert_eq!(response.rejected.len(), 1);
        assert!(
            response.index.ends_with("/reports/index.html"),
            "{}",
            response.index
        );
        assert!(dir.path().join("reports/index.html").is_file());
        assert!(dir.path().join("reports/tickers/%5EGSPC.html").is_file());
        // Every ticker of an empty lake: an index saying so.
        let response = function.handle(json!({}), now).await.unwrap();
        assert_eq!(response.tickers, 0);
        let err = function
            .handle(json!({"tickers": ["no way!"]}), now)
            .await
            .unwrap_err();
        assert!(!err.is_transient());
    }
}
