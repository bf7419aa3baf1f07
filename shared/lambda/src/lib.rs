//! What every SQS-triggered function shares (DESIGN.md section 3): each
//! record of a batch is handled on its own; a transient failure is reported
//! as a batch item failure and its message hidden for a delay that grows with
//! its receive count, so SQS redelivers it later without the function
//! waiting; a permanent failure is logged with its reason and its message sent
//! to the stage's dead-letter queue, never retried.
//!
//! Each record is handled inside its log span ([`record_span`]: its message
//! id, then the run id and ticker the handler notes once it has decoded the
//! message). [`handle_batch_metered`] also counts, under the stage,
//! `RecordsHandled`, `TransientFailures`, `PermanentFailures`, `DeadLettered`
//! and one `StageDuration` per handled record.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use futures::stream::{self, StreamExt};
use mdp_core::error::chain;
use mdp_core::lake::Failure;
use mdp_core::logging::record_span;
use mdp_core::messages::{MessageError, StageMessage};
use mdp_core::metrics::{Metric, Metrics, Stage};
use mdp_core::queue::{DeadLetter, GroupedMessage, Queue, QueueError, StageName};
use mdp_core::{ErrorClass, Lake, StageError, Ticker};
use tracing::Instrument;

/// First redelivery delay of a transient failure; doubles per receive.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(30);
/// Longest redelivery delay (the queue's redrive policy ends the attempts).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(900);

/// Where a stage's messages come from and where hopeless ones go.
#[derive(Clone)]
pub struct BatchContext {
    pub queue: Arc<dyn Queue>,
    /// The queue the batch was received from (for visibility changes).
    pub source_queue_url: String,
    /// The stage's dead-letter queue; without one, a permanent failure is
    /// reported as a batch failure and the redrive policy dead-letters it.
    pub dead_letter_queue_url: Option<String>,
    /// Records handled at the same time. Fetch runs its batch concurrently
    /// (each record may wait on retries); transform keeps 1, because two
    /// messages of one ticker must not race on its history.
    pub records_in_flight: usize,
    /// The stage consuming the queue: the `mdp.stage` of its dead letters
    /// and the folder of its failure records.
    pub stage: StageName,
    /// Where each transient failure is recorded
    /// (`state/failures/<stage>/<message id>.json`, for `mdp dlq show`
    /// once the redrive policy dead-letters the message); `None` records nothing.
    pub lake: Option<Lake>,
}

/// The outcome of one record, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    Done,
    /// Reported failed; redelivered after the delay.
    RetryLater(Duration),
    /// Sent to the dead-letter queue.
    DeadLettered,
}

/// Delay before the next delivery of a message received `receive_count` times.
pub fn retry_delay(receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    FIRST_RETRY_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_DELAY)
}

fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Handles every record with `handle(body)`, at most
/// `ctx.records_in_flight` at a time, and returns the ids of the records to
/// redeliver, in record order.
pub async fn handle_batch<F, Fut>(
    event: SqsEvent,
    ctx: &BatchContext,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), StageError>>,
{
    handle_batch_inner(event, ctx, None, handle).await
}

/// [`handle_batch`], counting the records and their outcomes under `stage`
/// in `metrics` (the four counters are written even when 0, so alarms see
/// values rather than missing data).
pub async fn handle_batch_metered<F, Fut>(
    event: SqsEvent,
    ctx: &BatchContext,
    stage: Stage,
    metrics: &Metrics,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), StageError>>,
{
    for counter in [
        Metric::RecordsHandled,
        Metric::TransientFailures,
        Metric::PermanentFailures,
        Metric::DeadLettered,
    ] {
        metrics.count(stage, counter, 0);
    }
    handle_batch_inner(event, ctx, Some(Meter { stage, metrics }), handle).await
}

/// Where a metered batch counts.
#[derive(Clone, Copy)]
struct Meter<'a> {
    stage: Stage,
    metrics: &'a Metrics,
}

/// Adds 1 to `metric` when the batch is metered.
fn tally(meter: Option<Meter<'_>>, metric: Metric) {
    if let Some(m) = meter {
        m.metrics.count(m.stage, metric, 1);
    }
}

async fn handle_batch_inner<F, Fut>(
    event: SqsEvent,
    ctx: &BatchContext,
    meter: Option<Meter<'_>>,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), StageError>>,
{
    // FIFO queues (transform, load) group messages by ticker: once a record
    // of a group fails, the later records of that group in this batch are
    // not handled (they would overtake it) but returned for redelivery in
    // order, as Lambda's own FIFO handling does.
    let failed_groups: std::sync::Mutex<HashSet<String>> = Default::default();
    let outcomes: Vec<RecordOutcome> = stream::iter(event.records.iter())
        .map(|record| {
            let failed_groups = &failed_groups;
            let handle = &handle;
            async move {
                let group = message_group(record);
                if let Some(group) = group
                    && lock(failed_groups).contains(group)
                {
                    return RecordOutcome::RetryLater(Duration::ZERO);
                }
                let span = record_span(record.message_id.as_deref().unwrap_or(""));
                let outcome = handle_record(record, ctx, meter, handle)
                    .instrument(span)
                    .await;
                if let (Some(group), RecordOutcome::RetryLater(_)) = (group, &outcome) {
                    lock(failed_groups).insert(group.to_string());
                }
                outcome
            }
        })
        .buffered(ctx.records_in_flight.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for (record, outcome) in event.records.iter().zip(outcomes) {
        if matches!(outcome, RecordOutcome::RetryLater(_)) {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// The FIFO message group of a record (none on a standard queue).
fn message_group(record: &SqsMessage) -> Option<&str> {
    record.attributes.get("MessageGroupId").map(String::as_str)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn handle_record<F, Fut>(
    record: &SqsMessage,
    ctx: &BatchContext,
    meter: Option<Meter<'_>>,
    handle: &F,
) -> RecordOutcome
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), StageError>>,
{
    let id = record.message_id.as_deref().unwrap_or("");
    let count = receive_count(record);
    let clock = Instant::now();
    let result = match &record.body {
        // A panic (a bug met by this message's data) fails this record only,
        // for good: the same bytes would panic again; the dead letter keeps
        // the message for a redrive once the bug is fixed.
        Some(body) => match std::panic::AssertUnwindSafe(handle(body.clone()))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                Err(StageError::permanent(format!(
                    "internal error (panic: {what})"
                )))
            }
        },
        None => Err(MessageError::NoBody.into()),
    };
    if let Some(m) = meter {
        m.metrics
            .time(m.stage, Metric::StageDuration, clock.elapsed());
    }
    tally(meter, Metric::RecordsHandled);
    let error = match result {
        Ok(()) => return RecordOutcome::Done,
        Err(e) => e,
    };
    match error.class {
        ErrorClass::Transient => {
            tally(meter, Metric::TransientFailures);
            let delay = retry_delay(count);
            tracing::warn!(message_id = id, receive_count = count, retry_in_s = delay.as_secs(), error = %error.message(), "transient failure: redelivering later");
            if let (Some(lake), Some(message_id)) = (&ctx.lake, record.message_id.as_deref()) {
                let reason = error.message();
                let failure = Failure {
                    stage: ctx.stage,
                    message_id,
                    body: record.body.as_deref(),
                    error_class: ErrorClass::Transient,
                    reason: &reason,
                    receive_count: count,
                };
                if let Err(e) = lake.record_failure(failure).await {
                    // The retry does not depend on it; only `mdp dlq show` loses the reason.
                    tracing::warn!(message_id = id, error = %chain(&e), "could not record the failure");
                }
            }
            if let Some(handle) = &record.receipt_handle
                && let Err(e) = ctx
                    .queue
                    .change_visibility(&ctx.source_queue_url, handle, delay)
                    .await
            {
                // The queue's own visibility timeout still delays the retry.
                tracing::warn!(message_id = id, error = %chain(&e), "could not delay the redelivery");
            }
            RecordOutcome::RetryLater(delay)
        }
        ErrorClass::Permanent => {
            tally(meter, Metric::PermanentFailures);
            tracing::error!(message_id = id, receive_count = count, error = %error.message(), "permanent failure: dead-lettering, no retry");
            let Some(dlq) = &ctx.dead_letter_queue_url else {
                return RecordOutcome::RetryLater(Duration::ZERO);
            };
            // A FIFO queue's dead-letter queue is FIFO too: same group. The
            // attributes say why (`mdp dlq list`).
            let letter = DeadLetter::permanent(
                ctx.stage,
                record.body.clone().unwrap_or_default(),
                message_group(record).map(str::to_string),
                error.message(),
            );
            let sent = ctx.queue.dead_letter(dlq, &letter).await;
            match sent {
                Ok(()) => {
                    tally(meter, Metric::DeadLettered);
                    RecordOutcome::DeadLettered
                }
                Err(e) => {
                    // Not lost: reported failed, it comes back and is tried again.
                    tracing::error!(message_id = id, error = %chain(&e), "could not dead-letter");
                    RecordOutcome::RetryLater(retry_delay(count))
                }
            }
        }
    }
}

/// What a handler calls once it has decoded its record's message: the run id
/// and ticker go on the record's log span (every later line of the record
/// carries them) and into the invocation's metrics as properties.
pub fn note_record(run_id: &str, ticker: &Ticker, metrics: &Metrics) {
    mdp_core::logging::note_message(run_id, ticker);
    metrics.property("run_id", run_id);
    metrics.property("ticker", ticker.as_str());
}

/// Records a stage's outcome for the ticker in the lake's run ledger (what
/// `mdp status` shows), then gives the outcome back. A ledger that cannot
/// be written is logged: it never fails the record.
pub async fn record_outcome<T>(
    lake: &mdp_core::Lake,
    (ticker, run_id): (&Ticker, &str),
    stage: Stage,
    result: Result<T, StageError>,
) -> Result<T, StageError> {
    use mdp_core::lake::StageOutcome;
    let (outcome, detail) = match &result {
        Ok(_) => (StageOutcome::Ok, None),
        Err(e) => (StageOutcome::Failed, Some(e.message())),
    };
    if let Err(e) = lake
        .record_stage(ticker, run_id, stage.as_str(), outcome, detail)
        .await
    {
        tracing::warn!(%ticker, error = %chain(&e), "run ledger not written");
    }
    result
}

/// Sends `messages` as JSON to `queue_url` (a stage hand-over), each in
/// its ticker's message group (which a FIFO queue keeps in order and hands
/// to one consumer at a time; a standard queue ignores it).
pub async fn send_messages<T: StageMessage>(
    queue: &dyn Queue,
    queue_url: &str,
    messages: &[T],
) -> Result<(), QueueError> {
    let grouped: Vec<GroupedMessage> = messages
        .iter()
        .map(|m| {
            GroupedMessage::new(
                m.ticker().as_str(),
                serde_json::to_string(m).expect("stage messages serialise"),
            )
        })
        .collect();
    queue.send_grouped(queue_url, &grouped).await
}

#[cfg(test)]
mod tests {
    use mdp_core::queue::InMemoryQueue;

    use super::*;

    fn record(id: &str, body: &str, receive_count: u32) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.receipt_handle = Some(format!("rh-{id}"));
        m.body = Some(body.into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        m
    }

    #[test]
    fn retry_delay_grows_with_receive_count_and_is_capped() {
        assert_eq!(retry_delay(1), Duration::from_secs(30));
        assert_eq!(retry_delay(2), Duration::from_secs(60));
        assert_eq!(retry_delay(4), Duration::from_secs(240));
        assert_eq!(retry_delay(6), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(1000), MAX_RETRY_DELAY);
    }

    #[tokio::test]
    async fn only_transient_failures_are_reported_and_permanent_ones_are_dead_lettered() {
        let queue = Arc::new(InMemoryQueue::new());
        let ctx = BatchContext {
            queue: queue.clone(),
            source_queue_url: "q-src".into(),
            dead_letter_queue_url: Some("q-dlq".into()),
            records_in_flight: 3,
            stage: StageName::Fetch,
            lake: None,
        };
        let mut event = SqsEvent::default();
        event.records = vec![
            record("ok", "fine", 1),
            record("busy", "retry", 3),
            record("bad", "poison", 1),
            record("ok2", "fine", 2),
        ];
        let response = handle_batch(event, &ctx, |body| async move {
            match body.as_str() {
                "retry" => Err(StageError::transient("HTTP 503")),
                "poison" => Err(StageError::permanent("malformed")),
                _ => Ok(()),
            }
        })
        .await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["busy"]);
        assert_eq!(queue.drain("q-dlq"), ["poison"]);
        assert_eq!(
            queue.visibility_changes(),
            [(
                "q-src".to_string(),
                "rh-busy".to_string(),
                Duration::from_secs(120)
            )]
        );
    }

    #[tokio::test]
    async fn a_panicking_record_is_dead_lettered_and_its_neighbours_complete() {
        let queue = Arc::new(InMemoryQueue::new());
        let ctx = BatchContext {
            queue: queue.clone(),
            source_queue_url: "q-src".into(),
            dead_letter_queue_url: Some("q-dlq".into()),
            records_in_flight: 1,
            stage: StageName::Transform,
            lake: None,
        };
        let mut event = SqsEvent::default();
        event.records = vec![
            record("a", "fine", 1),
            record("b", "boom", 1),
            record("c", "fine", 1),
        ];
        let done = std::sync::Mutex::new(Vec::new());
        let response = handle_batch(event, &ctx, |body| {
            let done = &done;
            async move {
                if body == "boom" {
                    panic!("bad data");
                }
                done.lock().unwrap().push(body);
                Ok(())
            }
        })
        .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(done.lock().unwrap().len(), 2);
        assert_eq!(queue.drain("q-dlq"), ["boom"]);
    }

    #[tokio::test]
    async fn after_a_failure_a_fifo_group_waits_and_other_groups_go_on() {
        let queue = Arc::new(InMemoryQueue::new());
        let ctx = BatchContext {
            queue: queue.clone(),
            source_queue_url: "q.fifo".into(),
            dead_letter_queue_url: Some("dlq.fifo".into()),
            records_in_flight: 1,
            stage: StageName::Transform,
            lake: None,
        };
        let grouped = |id: &str, body: &str, group: &str| {
            let mut r = record(id, body, 1);
            r.attributes.insert("MessageGroupId".into(), group.into());
            r
        };
        let mut event = SqsEvent::default();
        event.records = vec![
            grouped("1", "retry", "MSFT"),
            grouped("2", "fine", "AAPL"),
            grouped("3", "fine", "MSFT"),
            grouped("4", "fine", "AAPL"),
        ];
        let handled = std::sync::Mutex::new(Vec::new());
        let response = handle_batch(event, &ctx, |body| {
            let handled = &handled;
            async move {
                handled.lock().unwrap().push(body.clone());
                match body.as_str() {
                    "retry" => Err(StageError::transient("HTTP 503")),
                    _ => Ok(()),
                }
            }
        })
        .await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        // MSFT's second message is not handled before its first: both return.
        assert_eq!(failed, ["1", "3"]);
        assert_eq!(*handled.lock().unwrap(), ["retry", "fine", "fine"]);
    }

    #[tokio::test]
    async fn a_metered_batch_counts_records_and_outcomes_under_its_stage() {
        let queue = Arc::new(InMemoryQueue::new());
        let ctx = BatchContext {
            queue: queue.clone(),
            source_queue_url: "q.fifo".into(),
            dead_letter_queue_url: Some("dlq.fifo".into()),
            records_in_flight: 1,
            stage: StageName::Transform,
            lake: None,
        };
        let grouped = |id: &str, body: &str, group: &str| {
            let mut r = record(id, body, 1);
            r.attributes.insert("MessageGroupId".into(), group.into());
            r
        };
        let mut no_body = grouped("5", "", "BTC-USD");
        no_body.body = None;
        let mut event = SqsEvent::default();
        event.records = vec![
            grouped("1", "fine", "AAPL"),
            grouped("2", "retry", "MSFT"),
            // Held back behind its group's failure: not handled, not counted.
            grouped("3", "fine", "MSFT"),
            grouped("4", "poison", "NVDA"),
            no_body,
            grouped("6", "boom", "AMZN"),
        ];
        let metrics = Metrics::new();
        let response =
            handle_batch_metered(event, &ctx, Stage::Transform, &metrics, |body| async move {
                match body.as_str() {
                    "retry" => Err(StageError::transient("HTTP 503")),
                    "poison" => Err(StageError::permanent("malformed")),
                    "boom" => panic!("bad data"),
                    _ => Ok(()),
                }
            })
            .await;
        assert_eq!(response.batch_item_failures.len(), 2);
        let total = |m| metrics.total(Stage::Transform, m);
        assert_eq!(total(Metric::RecordsHandled), 5.0);
        assert_eq!(total(Metric::TransientFailures), 1.0);
        assert_eq!(total(Metric::PermanentFailures), 3.0);
        assert_eq!(total(Metric::DeadLettered), 3.0);
        assert_eq!(
            metrics
                .values(Stage::Transform, Metric::StageDuration)
                .len(),
            5
        );
        assert_eq!(queue.drain("dlq.fifo").len(), 3);

        // A clean batch still writes its counters, as zeros.
        let metrics = Metrics::new();
        let mut event = SqsEvent::default();
        event.records = vec![record("a", "fine", 1)];
        handle_batch_metered(event, &ctx, Stage::Load, &metrics, |_| async { Ok(()) }).await;
        let mut out = Vec::new();
        metrics.flush(&mut out).unwrap();
        let document: serde_json::Value = serde_json::from_slice(&out).unwrap();
        mdp_core::metrics::check_emf_document(&document).unwrap();
        assert_eq!(document["Stage"], "load");
        assert_eq!(document["RecordsHandled"], 1);
        for zero in ["TransientFailures", "PermanentFailures", "DeadLettered"] {
            assert_eq!(document[zero], 0, "{zero}");
        }
    }

    #[tokio::test]
    async fn without_a_dead_letter_queue_permanent_failures_go_back_to_the_redrive_policy() {
        let queue = Arc::new(InMemoryQueue::new());
        let ctx = BatchContext {
            queue,
            source_queue_url: "q".into(),
            dead_letter_queue_url: None,
            records_in_flight: 1,
            stage: StageName::Transform,
            lake: None,
        };
        let mut event = SqsEvent::default();
        event.records = vec![record("bad", "poison", 1)];
        let metrics = Metrics::new();
        let response = handle_batch_metered(event, &ctx, Stage::Fetch, &metrics, |_| async {
            Err(StageError::permanent("no"))
        })
        .await;
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(metrics.total(Stage::Fetch, Metric::PermanentFailures), 1.0);
        assert_eq!(metrics.total(Stage::Fetch, Metric::DeadLettered), 0.0);
    }

    #[tokio::test]
    async fn dead_letters_say_why_and_transient_failures_are_recorded() {
        let dir = std::env::temp_dir().join(format!(
            "mdp-lambda-failures-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let lake = Lake::new(Arc::new(mdp_core::LocalStore::new(&dir)));
        let queue = Arc::new(InMemoryQueue::new());
        let ctx = BatchContext {
            queue: queue.clone(),
            source_queue_url: "q.fifo".into(),
            dead_letter_queue_url: Some("dlq.fifo".into()),
            records_in_flight: 1,
            stage: StageName::Transform,
            lake: Some(lake.clone()),
        };
        let grouped = |id: &str, body: &str, count: u32| {
            let mut r = record(id, body, count);
            r.attributes.insert("MessageGroupId".into(), "MSFT".into());
            r
        };
        let mut event = SqsEvent::default();
        event.records = vec![grouped("bad", r#"{"v":1,"ticker":"MSFT"}"#, 1)];
        handle_batch(event, &ctx, |_| async {
            Err(StageError::permanent("malformed message").context("decoding"))
        })
        .await;
        let letters = queue.dead_letters("dlq.fifo");
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].stage, StageName::Transform);
        assert_eq!(letters[0].error_class, ErrorClass::Permanent);
        assert_eq!(letters[0].group_id.as_deref(), Some("MSFT"));
        assert_eq!(letters[0].reason, "decoding: malformed message");
        // A permanent failure has no failure record: its letter says it all.
        assert_eq!(
            lake.read_failure(StageName::Transform, "bad")
                .await
                .unwrap(),
            None
        );

        for count in [1, 2] {
            let mut event = SqsEvent::default();
            event.records = vec![grouped("busy", r#"{"v":1,"ticker":"MSFT"}"#, count)];
            handle_batch(event, &ctx, |_| async {
                Err(StageError::transient("HTTP 503"))
            })
            .await;
        }
        let record = lake
            .read_failure(StageName::Transform, "busy")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.receive_count, 2);
        assert_eq!(record.ticker.as_deref(), Some("MSFT"));
        assert_eq!(record.error_class, ErrorClass::Transient);
        assert_eq!(record.reason, "HTTP 503");
        assert!(record.first_failure <= record.last_failure);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
