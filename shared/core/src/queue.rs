//! Port to the queues between stages (SQS in AWS), with an in-memory adapter
//! for one process and tests.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorClass, StageError};

/// A message the queue did not take, or a queue that did not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("message {index} for {queue_url} is empty; SQS needs at least one character")]
    Empty { queue_url: String, index: usize },
    #[error(
        "message {index} for {queue_url} is {bytes} bytes, over the {limit}-byte limit; \
         messages must carry lake keys, not data"
    )]
    TooLarge {
        queue_url: String,
        index: usize,
        bytes: usize,
        limit: usize,
    },
    /// The queue service said no, or could not be reached.
    #[error("{what}")]
    Service {
        what: String,
        class: ErrorClass,
        #[source]
        source: ServiceError,
    },
}

impl QueueError {
    pub fn class(&self) -> ErrorClass {
        match self {
            QueueError::Empty { .. } | QueueError::TooLarge { .. } => ErrorClass::Permanent,
            QueueError::Service { class, .. } => *class,
        }
    }
}

impl From<QueueError> for StageError {
    fn from(e: QueueError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

/// A cloud service's answer as text (`Code (HTTP status): message`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(pub String);

/// SQS caps a `SendMessageBatch` at ten entries.
pub const MAX_BATCH: usize = 10;

/// A message body with its message group: the ticker it is about. FIFO
/// queues deliver one group in order, to one consumer at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupedMessage {
    pub group_id: String,
    pub body: String,
}

impl GroupedMessage {
    pub fn new(group_id: impl Into<String>, body: impl Into<String>) -> GroupedMessage {
        GroupedMessage {
            group_id: group_id.into(),
            body: body.into(),
        }
    }
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends each body as one message to the queue at `queue_url`, in batches
    /// of at most [`MAX_BATCH`]. All or an error: a body that was not accepted
    /// fails the call (SQS redelivery of the caller's own message then resends).
    async fn send(&self, queue_url: &str, bodies: &[String]) -> Result<(), QueueError>;

    /// Sends messages with their groups. A queue without groups (standard
    /// SQS, in memory) sends the bodies as [`Queue::send`] does.
    async fn send_grouped(
        &self,
        queue_url: &str,
        messages: &[GroupedMessage],
    ) -> Result<(), QueueError> {
        let bodies: Vec<String> = messages.iter().map(|m| m.body.clone()).collect();
        self.send(queue_url, &bodies).await
    }

    /// Hides a received message for `delay` before it is delivered again
    /// (the "reschedule" of a transient failure, without waiting in-process).
    async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError>;

    /// Sends a message that failed for good to the dead-letter queue at
    /// `queue_url`, with why ([`DeadLetter::attributes`]) where the queue
    /// keeps message attributes. This default sends the body alone (in its
    /// group when it has one), as [`Queue::send_grouped`] / [`Queue::send`].
    async fn dead_letter(&self, queue_url: &str, letter: &DeadLetter) -> Result<(), QueueError> {
        match &letter.group_id {
            Some(group) => {
                self.send_grouped(
                    queue_url,
                    &[GroupedMessage::new(group, letter.body.clone())],
                )
                .await
            }
            None => {
                self.send(queue_url, std::slice::from_ref(&letter.body))
                    .await
            }
        }
    }
}

/// The stage a queue feeds, a dead letter failed in, or a failure record is
/// about (`validate`, `fetch`, `transform`, `load`): the `mdp.stage`
/// attribute and the `--stage` of `mdp dlq`. (The metrics' `Stage`
/// dimension has these four and `run`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageName {
    Validate,
    Fetch,
    Transform,
    Load,
}

impl StageName {
    pub const ALL: [StageName; 4] = [
        StageName::Validate,
        StageName::Fetch,
        StageName::Transform,
        StageName::Load,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Validate => "validate",
            StageName::Fetch => "fetch",
            StageName::Transform => "transform",
            StageName::Load => "load",
        }
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage name that is none of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage {0:?}: expected validate, fetch, transform or load")]
pub struct UnknownStage(pub String);

impl FromStr for StageName {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<StageName, UnknownStage> {
        StageName::ALL
            .into_iter()
            .find(|stage| stage.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownStage(s.to_string()))
    }
}

/// Message attribute: the stage that dead-lettered the message.
pub const ATTR_STAGE: &str = "mdp.stage";
/// Message attribute: `permanent` (or `transient`), the class of the failure.
pub const ATTR_ERROR_CLASS: &str = "mdp.error_class";
/// Message attribute: the error chain, made safe by [`safe_reason`].
pub const ATTR_REASON: &str = "mdp.reason";
/// Message attribute: when the message first failed, RFC 3339 UTC.
pub const ATTR_FIRST_FAILURE: &str = "mdp.first_failure";
/// The longest reason kept, in bytes (UTF-8), ellipsis included: enough for
/// any error chain the stages produce, small beside SQS's 256 KiB message
/// (body and attributes together).
pub const MAX_REASON_BYTES: usize = 4096;
/// What ends a reason that was cut.
pub const ELLIPSIS: char = '…';

/// `text` as an SQS string attribute may carry it, in at most `max_bytes`
/// bytes of UTF-8: characters XML 1.0 does not allow (control characters
/// other than tab and line breaks, lone surrogates cannot occur in a `str`,
/// U+FFFE/U+FFFF) become U+FFFD, and a longer text is cut on a character
/// boundary and ends with [`ELLIPSIS`]. A budget too small for the ellipsis
/// gives as many whole characters as fit.
pub fn safe_reason(text: &str, max_bytes: usize) -> String {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}'
    };
    let clean: String = text
        .chars()
        .map(|c| {
            if allowed(c) {
                c
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect();
    if clean.len() <= max_bytes {
        return clean;
    }
    let ellipsis = ELLIPSIS.len_utf8();
    let room = max_bytes.saturating_sub(if max_bytes >= ellipsis { ellipsis } else { 0 });
    let mut cut = room;
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = clean[..cut].trim_end().to_string();
    if max_bytes >= ellipsis {
        out.push(ELLIPSIS);
    }
    out
}

/// A point in time, UTC (what the failure attributes and records hold).
pub type Timestamp = DateTime<Utc>;

/// A time as the failure attributes and records write it: RFC 3339 in UTC
/// with milliseconds (`2025-06-30T22:01:02.345Z`).
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads an RFC 3339 time (any offset) as UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The class as the attributes and records spell it.
pub fn parse_error_class(text: &str) -> Option<ErrorClass> {
    match text.trim() {
        t if t.eq_ignore_ascii_case("permanent") => Some(ErrorClass::Permanent),
        t if t.eq_ignore_ascii_case("transient") => Some(ErrorClass::Transient),
        _ => None,
    }
}

/// The ticker a stage message body names (its `"ticker"` field), if any.
pub fn ticker_of_body(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value.get("ticker")?.as_str().map(str::to_string)
}

/// A message a stage gave up on, with why: what [`Queue::dead_letter`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    /// The message group on a FIFO queue (its ticker); `None` on a standard one.
    pub group_id: Option<String>,
    pub stage: StageName,
    pub error_class: ErrorClass,
    /// The error chain (made safe and cut when sent).
    pub reason: String,
    pub first_failure: DateTime<Utc>,
}

impl DeadLetter {
    /// The dead letter of a permanent failure detected now (its first failure).
    pub fn permanent(
        stage: StageName,
        body: impl Into<String>,
        group_id: Option<String>,
        reason: impl Into<String>,
    ) -> DeadLetter {
        DeadLetter {
            body: body.into(),
            group_id,
            stage,
            error_class: ErrorClass::Permanent,
            reason: reason.into(),
            first_failure: Utc::now(),
        }
    }

    /// The message attributes, `(name, string value)`: stage, class, first
    /// failure, then the reason made safe and cut to `max_reason_bytes`.
    pub fn attributes(&self, max_reason_bytes: usize) -> Vec<(&'static str, String)> {
        vec![
            (ATTR_STAGE, self.stage.as_str().to_string()),
            (ATTR_ERROR_CLASS, self.error_class.to_string()),
            (ATTR_FIRST_FAILURE, format_time(self.first_failure)),
            (ATTR_REASON, safe_reason(&self.reason, max_reason_bytes)),
        ]
    }

    /// A deduplication id for a FIFO dead-letter queue, the same for every
    /// send of this letter (an SDK retry is queued once) and different for
    /// the same body failing again later (after a redrive): content-based
    /// deduplication would drop that second dead letter for five minutes,
    /// and the message with it.
    pub fn deduplication_id(&self) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.body.hash(&mut hasher);
        self.group_id.hash(&mut hasher);
        format!(
            "{}-{}-{:016x}",
            self.stage,
            self.first_failure.timestamp_micros(),
            hasher.finish()
        )
    }
}

/// Messages kept in memory, per queue URL, in send order.
#[derive(Debug, Default)]
pub struct InMemoryQueue {
    sent: Mutex<HashMap<String, Vec<String>>>,
    visibility: Mutex<Vec<(String, String, Duration)>>,
    dead_letters: Mutex<HashMap<String, Vec<DeadLetter>>>,
}

impl InMemoryQueue {
    pub fn new() -> InMemoryQueue {
        InMemoryQueue::default()
    }

    /// Removes and returns every message sent to `queue_url`.
    pub fn drain(&self, queue_url: &str) -> Vec<String> {
        self.sent
            .lock()
            .expect("queue lock")
            .remove(queue_url)
            .unwrap_or_default()
    }

    /// Visibility changes requested so far: (queue URL, receipt handle, delay).
    pub fn visibility_changes(&self) -> Vec<(String, String, Duration)> {
        self.visibility.lock().expect("queue lock").clone()
    }

    /// The dead letters sent to `queue_url` so far, with their attributes
    /// (their bodies are also among the messages [`InMemoryQueue::drain`] returns).
    pub fn dead_letters(&self, queue_url: &str) -> Vec<DeadLetter> {
        self.dead_letters
            .lock()
            .expect("queue lock")
            .get(queue_url)
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait]
impl Queue for InMemoryQueue {
    async fn send(&self, queue_url: &str, bodies: &[String]) -> Result<(), QueueError> {
        self.sent
            .lock()
            .expect("queue lock")
            .entry(queue_url.to_string())
            .or_default()
            .extend(bodies.iter().cloned());
        Ok(())
    }

    async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.visibility.lock().expect("queue lock").push((
            queue_url.to_string(),
            receipt_handle.to_string(),
            delay,
        ));
        Ok(())
    }

    async fn dead_letter(&self, queue_url: &str, letter: &DeadLetter) -> Result<(), QueueError> {
        self.send(queue_url, std::slice::from_ref(&letter.body))
            .await?;
        self.dead_letters
            .lock()
            .expect("queue lock")
            .entry(queue_url.to_string())
            .or_default()
            .push(letter.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary_with_an_ellipsis() {
        // Short enough: unchanged.
        assert_eq!(
            safe_reason("HTTP 404: no such symbol", 100),
            "HTTP 404: no such symbol"
        );
        assert_eq!(safe_reason("", 0), "");
        // 'é' is 2 bytes, '€' 3, '𝄞' 4: every cut of every budget is a
        // character boundary, within the budget, and ends with the ellipsis.
        let text = "é€𝄞a".repeat(50);
        for max in 0..=text.len() + 2 {
            let out = safe_reason(&text, max);
            assert!(out.len() <= max, "{max}: {} bytes", out.len());
            if text.len() <= max {
                assert_eq!(out, text);
            } else if max >= ELLIPSIS.len_utf8() {
                assert!(out.ends_with(ELLIPSIS), "{max}: {out:?}");
                let kept = out.strip_suffix(ELLIPSIS).unwrap();
                assert!(text.starts_with(kept), "{max}: {out:?}");
                // As much as fits: one more character would not.
                let next = text[kept.len()..].chars().next().unwrap();
                assert!(
                    kept.len() + next.len_utf8() + ELLIPSIS.len_utf8() > max,
                    "{max}"
                );
            } else {
                // No room for the ellipsis: whole characters only.
                assert!(text.starts_with(&out), "{max}: {out:?}");
                let next = text[out.len()..].chars().next().unwrap();
                assert!(out.len() + next.len_utf8() > max, "{max}");
            }
        }
        // Boundaries of "aé€xyz" (9 bytes): 0, 1, 3, 6, 7, 8, 9.
        assert_eq!(safe_reason("aé€xyz", 9), "aé€xyz");
        assert_eq!(safe_reason("aé€xyz", 8), "aé…");
        assert_eq!(safe_reason("aé€xyz", 6), "aé…");
        assert_eq!(safe_reason("aé€xyz", 5), "a…");
        assert_eq!(safe_reason("aé€xyz", 3), "…");
        assert_eq!(safe_reason("aé€xyz", 2), "a");
        let long = "x".repeat(10 * MAX_REASON_BYTES);
        assert_eq!(safe_reason(&long, MAX_REASON_BYTES).len(), MAX_REASON_BYTES);
    }

    #[test]
    fn characters_sqs_refuses_are_replaced() {
        assert_eq!(
            safe_reason("a\u{0}b\u{1b}[31mc\td\ne\u{FFFF}f", 100),
            "a\u{FFFD}b\u{FFFD}[31mc\td\ne\u{FFFD}f"
        );
        // Replacements count in the budget (U+FFFD is 3 bytes).
        let out = safe_reason(&"\u{1}".repeat(10), 10);
        assert_eq!(out, "\u{FFFD}\u{FFFD}…");
    }

    #[test]
    fn stages_parse_and_print_as_their_names() {
        for stage in StageName::ALL {
            assert_eq!(stage.as_str().parse::<StageName>(), Ok(stage));
            assert_eq!(
                serde_json::to_string(&stage).unwrap(),
                format!("\"{stage}\"")
            );
        }
        assert_eq!("Transform".parse::<StageName>(), Ok(StageName::Transform));
        assert!(
            "warehouse"
                .parse::<StageName>()
                .unwrap_err()
                .to_string()
                .contains("fetch")
        );
    }

    #[tokio::test]
    async fn the_in_memory_queue_keeps_dead_letters_with_their_attributes() {
        let queue = InMemoryQueue::new();
        let at: DateTime<Utc> = "2025-06-30T22:01:02.345Z".parse().unwrap();
        let letter = DeadLetter {
            first_failure: at,
            ..DeadLetter::permanent(
                StageName::Load,
                r#"{"v":1,"ticker":"MSFT"}"#,
                Some("MSFT".into()),
                "malformed message: missing field `rows`",
            )
        };
        queue.dead_letter("dlq.fifo", &letter).await.unwrap();
        assert_eq!(
            queue.dead_letters("dlq.fifo"),
            std::slice::from_ref(&letter)
        );
        assert_eq!(queue.drain("dlq.fifo"), std::slice::from_ref(&letter.body));
        assert_eq!(
            letter.attributes(MAX_REASON_BYTES),
            [
                (ATTR_STAGE, "load".to_string()),
                (ATTR_ERROR_CLASS, "permanent".to_string()),
                (ATTR_FIRST_FAILURE, "2025-06-30T22:01:02.345Z".to_string()),
                (
                    ATTR_REASON,
                    "malformed message: missing field `rows`".to_string()
                ),
            ]
        );
        assert_eq!(parse_time("2025-06-30T22:01:02.345Z"), Some(at));
        assert_eq!(parse_error_class("permanent"), Some(ErrorClass::Permanent));
        assert_eq!(ticker_of_body(&letter.body).as_deref(), Some("MSFT"));
        assert_eq!(ticker_of_body("not json"), None);
        // One id per letter, another for the same body failing later.
        assert_eq!(letter.deduplication_id(), letter.clone().deduplication_id());
        let later = DeadLetter {
            first_failure: at + chrono::Duration::seconds(1),
            ..letter.clone()
        };
        assert_ne!(letter.deduplication_id(), later.deduplication_id());
        assert!(letter.deduplication_id().len() <= 128);
    }
}
