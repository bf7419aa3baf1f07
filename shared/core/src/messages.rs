//! Stage hand-over messages (DESIGN.md section 3, contract). They carry lake
//! keys (claim checks), never data: SQS caps a message at 256 KiB.

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::dates::FetchMode;
use crate::error::StageError;
use crate::ticker::Ticker;

/// The only message schema version this code reads and writes.
pub const MESSAGE_VERSION: u32 = 1;

/// EventBridge Scheduler input to validate (also the direct-invoke payload).
/// Tickers stay raw strings here: validate reports bad ones and runs the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tickers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<NaiveDate>,
}

/// validate → fetch: one per ticker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub v: u32,
    pub run_id: String,
    pub ticker: Ticker,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub mode: FetchMode,
}

/// fetch → transform: where the raw response landed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformRequest {
    pub v: u32,
    pub run_id: String,
    pub ticker: Ticker,
    pub raw_key: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// transform → load: the curated partitions to load and what they hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadRequest {
    pub v: u32,
    pub run_id: String,
    pub ticker: Ticker,
    pub partition_keys: Vec<String>,
    pub rows: u64,
    pub min_date: Option<NaiveDate>,
    pub max_date: Option<NaiveDate>,
}

/// A message between stages: about one ticker, which is its message group.
pub trait StageMessage: Serialize {
    fn ticker(&self) -> &Ticker;
}

impl StageMessage for FetchRequest {
    fn ticker(&self) -> &Ticker {
        &self.ticker
    }
}

impl StageMessage for TransformRequest {
    fn ticker(&self) -> &Ticker {
        &self.ticker
    }
}

impl StageMessage for LoadRequest {
    fn ticker(&self) -> &Ticker {
        &self.ticker
    }
}

/// A message body that can never be handled (so never retried).
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("unsupported message version {0} (this code reads v{MESSAGE_VERSION})")]
    Version(u64),
    #[error("message has no numeric \"v\" schema version field")]
    NoVersion,
    #[error("malformed message")]
    Malformed(#[source] serde_json::Error),
    #[error("SQS record has no body")]
    NoBody,
    #[error("invalid schedule input")]
    Schedule(#[source] serde_json::Error),
}

impl From<MessageError> for StageError {
    fn from(e: MessageError) -> Self {
        StageError::with_source(crate::ErrorClass::Permanent, e)
    }
}

/// Reads a versioned stage message. A body that is not JSON, has no `"v"`, has
/// another version, or misses a field is a permanent failure: redelivering
/// the same bytes can never succeed.
pub fn decode_message<T: DeserializeOwned>(body: &str) -> Result<T, MessageError> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(MessageError::NotJson)?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(MESSAGE_VERSION) => {}
        Some(v) => return Err(MessageError::Version(v)),
        None => return Err(MessageError::NoVersion),
    }
    serde_json::from_value(value).map_err(MessageError::Malformed)
}

/// A run id: the UTC time it started plus a random suffix, sortable and unique.
pub fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        fastrand::u32(..)
    )
}

/// When the run started, read back from an id made by [`new_run_id`].
pub fn run_started_at(run_id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let stamp = run_id.get(..16)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_request_round_trips_in_contract_shape() {
        let body = r#"{"v":1,"run_id":"r1","ticker":"msft","start":"2025-01-02","end":"2025-06-30","mode":"backfill"}"#;
        let msg: FetchRequest = decode_message(body).unwrap();
        assert_eq!(msg.ticker.as_str(), "MSFT");
        assert_eq!(msg.mode, FetchMode::Backfill);
        let json: serde_json::Value = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["ticker"], "MSFT");
        assert_eq!(json["start"], "2025-01-02");
        assert_eq!(json["mode"], "backfill");
    }

    #[test]
    fn load_request_fields_are_named_as_in_the_contract() {
        let msg = LoadRequest {
            v: 1,
            run_id: "r".into(),
            ticker: Ticker::parse("^GSPC").unwrap(),
            partition_keys: vec![
                "curated/market_data/ticker=%5EGSPC/year=2025/part-0.parquet".into(),
            ],
            rows: 3,
            min_date: Some("2025-01-02".parse().unwrap()),
            max_date: Some("2025-01-06".parse().unwrap()),
        };
        let json = serde_json::to_value(&msg).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "v",
            "run_id",
            "ticker",
            "partition_keys",
            "rows",
            "min_date",
            "max_date",
        ] {
            assert!(keys.contains(&k), "missing {k}");
        }
        let back: LoadRequest = decode_message(&json.to_string()).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn bad_messages_are_permanent_and_say_why() {
        let cases = [
            ("not json", "not JSON"),
            (r#"{"run_id":"r"}"#, "schema version"),
            (r#"{"v":2,"run_id":"r"}"#, "unsupported message version 2"),
            (r#"{"v":1,"run_id":"r","ticker":"MSFT"}"#, "malformed"),
            (
                r#"{"v":1,"run_id":"r","ticker":"BAD TICKER","start":"2025-01-02","end":"2025-01-03","mode":"backfill"}"#,
                "invalid ticker",
            ),
            (
                r#"{"v":1,"run_id":"r","ticker":"MSFT","start":"2025-13-02","end":"2025-01-03","mode":"backfill"}"#,
                "malformed",
            ),
        ];
        for (body, needle) in cases {
            let err = StageError::from(decode_message::<FetchRequest>(body).unwrap_err());
            assert!(!err.is_transient(), "{body}");
            assert!(err.message().contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn run_ids_carry_their_start_time() {
        let id = new_run_id();
        let started = run_started_at(&id).unwrap();
        assert!(
            (chrono::Utc::now() - started).num_seconds().abs() <= 2,
            "{id}"
        );
        assert_eq!(
            run_started_at("20251126T230000Z-00ab12cd")
                .unwrap()
                .to_rfc3339(),
            "2025-11-26T23:00:00+00:00"
        );
        assert_eq!(run_started_at("manual-backfill"), None);
        assert_eq!(run_started_at(""), None);
    }

    #[test]
    fn schedule_event_fields_are_optional() {
        let ev: ScheduleEvent = serde_json::from_str("{}").unwrap();
        assert_eq!(ev, ScheduleEvent::default());
        let ev: ScheduleEvent =
            serde_json::from_str(r#"{"tickers":["AAPL","msft"],"date":"2025-11-26"}"#).unwrap();
        assert_eq!(ev.tickers.unwrap(), ["AAPL", "msft"]);
        assert_eq!(ev.date, Some("2025-11-26".parse().unwrap()));
    }
}
