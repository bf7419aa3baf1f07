//! The last failure of a message that is being retried:
//! `state/failures/<stage>/<message id>.json`, rewritten on every transient
//! failure. When the queue's redrive policy finally moves the message to the
//! dead-letter queue it keeps its message id, so `mdp dlq show` finds why it
//! failed here (a message a function dead-letters itself carries its reason
//! in its attributes instead).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Lake, StoreError};
use crate::encoding::percent_encode;
use crate::error::ErrorClass;
use crate::queue::{MAX_REASON_BYTES, StageName, safe_reason, ticker_of_body};

/// Why a message failed, and since when: `state/failures/<stage>/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub stage: StageName,
    /// The SQS message id (kept when the redrive policy dead-letters it).
    pub message_id: String,
    /// The ticker the body names, when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticker: Option<String>,
    #[serde(with = "class_name")]
    pub error_class: ErrorClass,
    /// The last failure's error chain, cut to [`MAX_REASON_BYTES`].
    pub reason: String,
    pub first_failure: DateTime<Utc>,
    pub last_failure: DateTime<Utc>,
    /// SQS's receive count at the last failure.
    pub receive_count: u32,
}

/// One failure of one received message, as the batch handler knows it.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    pub stage: StageName,
    pub message_id: &'a str,
    /// The message body, for the ticker it names.
    pub body: Option<&'a str>,
    pub error_class: ErrorClass,
    /// The error chain.
    pub reason: &'a str,
    /// The message's `ApproximateReceiveCount`.
    pub receive_count: u32,
}

impl Lake {
    /// Where the failure record of `message_id` lives. The id is
    /// percent-encoded (SQS ids are UUIDs, left as they are), so no id can
    /// name another key.
    pub fn failure_key(stage: StageName, message_id: &str) -> String {
        format!(
            "state/failures/{stage}/{}.json",
            percent_encode(message_id, b"-_")
        )
    }

    /// Records `failure` at `now`: a new record, or the stored one with the
    /// class, reason, last failure and receive count replaced and its first
    /// failure kept. An unreadable stored record is replaced. Returns what
    /// was written.
    pub async fn record_failure(&self, failure: Failure<'_>) -> Result<FailureRecord, StoreError> {
        self.record_failure_at(failure, Utc::now()).await
    }

    /// [`Lake::record_failure`] with the time given.
    pub async fn record_failure_at(
        &self,
        failure: Failure<'_>,
        now: DateTime<Utc>,
    ) -> Result<FailureRecord, StoreError> {
        let stored = match self.read_failure(failure.stage, failure.message_id).await {
            Ok(stored) => stored,
            Err(StoreError::Corrupt { key, .. }) => {
                tracing::warn!(%key, "replacing an unreadable failure record");
                None
            }
            Err(e) => return Err(e),
        };
        let first_failure = stored.as_ref().map_or(now, |s| s.first_failure.min(now));
        let ticker = failure
            .body
            .and_then(ticker_of_body)
            .or_else(|| stored.and_then(|s| s.ticker));
        let record = FailureRecord {
            stage: failure.stage,
            message_id: failure.message_id.to_string(),
            ticker,
            error_class: failure.error_class,
            reason: safe_reason(failure.reason, MAX_REASON_BYTES),
            first_failure,
            last_failure: now,
            receive_count: failure.receive_count,
        };
        let bytes = serde_json::to_vec_pretty(&record).expect("a failure record serialises");
        self.store()
            .put(&Self::failure_key(failure.stage, failure.message_id), bytes)
            .await?;
        Ok(record)
    }

    /// The failure record of `message_id` at `stage`, if any.
    pub async fn read_failure(
        &self,
        stage: StageName,
        message_id: &str,
    ) -> Result<Option<FailureRecord>, StoreError> {
        let key = Self::failure_key(stage, message_id);
        match self.store().get(&key).await? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Corrupt {
                        key,
                        what: "failure record",
                        source,
                    })
            }
        }
    }

    /// Removes the failure record of `message_id` (after it succeeded, or
    /// was redriven as a new message); a missing one is not an error.
    pub async fn clear_failure(
        &self,
        stage: StageName,
        message_id: &str,
    ) -> Result<(), StoreError> {
        self.store()
            .delete(&Self::failure_key(stage, message_id))
            .await
    }
}

/// [`ErrorClass`] as `"transient"` / `"permanent"`.
mod class_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::error::ErrorClass;

    pub fn serialize<S: Serializer>(class: &ErrorClass, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(class)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ErrorClass, D::Error> {
        let text = String::deserialize(d)?;
        crate::queue::parse_error_class(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown error class {text:?}: expected transient or permanent"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::LocalStore;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn failure<'a>(reason: &'a str, receive_count: u32) -> Failure<'a> {
        Failure {
            stage: StageName::Fetch,
            message_id: "6f1d2a4e-0b7c-4c1e-9d7a-3b2f1e0c9a88",
            body: Some(r#"{"v":1,"run_id":"r","ticker":"^GSPC"}"#),
            error_class: ErrorClass::Transient,
            reason,
            receive_count,
        }
    }

    #[tokio::test]
    async fn a_later_failure_keeps_the_first_failure_and_updates_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let id = "6f1d2a4e-0b7c-4c1e-9d7a-3b2f1e0c9a88";
        assert_eq!(lake.read_failure(StageName::Fetch, id).await.unwrap(), None);

        let first = lake
            .record_failure_at(failure("HTTP 503", 1), at("2025-06-30T22:00:00Z"))
            .await
            .unwrap();
        assert_eq!(
            first,
            FailureRecord {
                stage: StageName::Fetch,
                message_id: id.into(),
                ticker: Some("^GSPC".into()),
                error_class: ErrorClass::Transient,
                reason: "HTTP 503".into(),
                first_failure: at("2025-06-30T22:00:00Z"),
                last_failure: at("2025-06-30T22:00:00Z"),
                receive_count: 1,
            }
        );
        let second = lake
            .record_failure_at(
                failure("HTTP 429: slow down", 3),
                at("2025-06-30T22:04:30Z"),
            )
            .await
            .unwrap();
        assert_eq!(second.first_failure, at("2025-06-30T22:00:00Z"));
        assert_eq!(second.last_failure, at("2025-06-30T22:04:30Z"));
        assert_eq!(second.receive_count, 3);
        assert_eq!(second.reason, "HTTP 429: slow down");
        assert_eq!(
            lake.read_failure(StageName::Fetch, id).await.unwrap(),
            Some(second)
        );

        // The contract's file and fields.
        let path = dir.path().join(format!("state/failures/fetch/{id}.json"));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["stage"], "fetch");
        assert_eq!(json["message_id"], id);
        assert_eq!(json["ticker"], "^GSPC");
        assert_eq!(json["error_class"], "transient");
        assert_eq!(json["first_failure"], "2025-06-30T22:00:00Z");
        assert_eq!(json["last_failure"], "2025-06-30T22:04:30Z");
        assert_eq!(json["receive_count"], 3);

        // Stages do not share records; clearing removes it, twice is fine.
        assert_eq!(lake.read_failure(StageName::Load, id).await.unwrap(), None);
        lake.clear_failure(StageName::Fetch, id).await.unwrap();
        lake.clear_failure(StageName::Fetch, id).await.unwrap();
        assert_eq!(lake.read_failure(StageName::Fetch, id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn reasons_are_cut_ids_cannot_escape_and_a_corrupt_record_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let long = "é".repeat(MAX_REASON_BYTES);
        let mut f = failure(&long, 2);
        f.body = Some("not json");
        f.message_id = "../../x";
        let key = Lake::failure_key(StageName::Fetch, f.message_id);
        assert_eq!(key, "state/failures/fetch/%2E%2E%2F%2E%2E%2Fx.json");
        let record = lake
            .record_failure_at(f, at("2025-07-01T00:00:00Z"))
            .await
            .unwrap();
        assert!(record.reason.len() <= MAX_REASON_BYTES);
        assert!(record.reason.ends_with(crate::queue::ELLIPSIS));
        assert_eq!(record.ticker, None);

        std::fs::write(dir.path().join(&key), b"{not a record").unwrap();
        assert!(matches!(
            lake.read_failure(StageName::Fetch, f.message_id).await,
            Err(StoreError::Corrupt { .. })
        ));
        let replaced = lake
            .record_failure_at(f, at("2025-07-01T00:20:00Z"))
            .await
            .unwrap();
        assert_eq!(replaced.first_failure, at("2025-07-01T00:20:00Z"));
        assert_eq!(
            lake.read_failure(StageName::Fetch, f.message_id)
                .await
                .unwrap(),
            Some(replaced)
        );
    }
}
