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
