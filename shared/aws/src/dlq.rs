//! The stages' dead-letter queues, for `mdp dlq`: look at what is in one
//! without consuming it ([`list`], [`show`]) and move it back to the stage's
//! queue ([`redrive`]).
//!
//! Each message is explained by its `mdp.*` attributes when the function
//! dead-lettered it itself (a permanent failure, [`SqsQueue`](crate::SqsQueue)'s
//! `dead_letter`), else by the lake's failure record of its message id
//! (`state/failures/<stage>/<id>.json`, written on every transient failure;
//! the redrive policy keeps the id when it moves the message).
//!
//! Peeking receives the messages with a short visibility timeout until the
//! queue's `ApproximateNumberOfMessages` are seen (or a receive comes back
//! empty), then makes them all visible again at once: the queue is as it
//! was. SQS hands out the messages of a FIFO message group in order, one
//! batch at a time: a group with more than ten messages shows its first ten
//! only ([`Listing::unseen`] counts what was not seen).

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};
use mdp_core::lake::FailureRecord;
use mdp_core::queue::{
    ATTR_ERROR_CLASS, ATTR_FIRST_FAILURE, ATTR_REASON, ATTR_STAGE, QueueError, ServiceError,
    StageName, Timestamp, parse_error_class, parse_time, ticker_of_body,
};
use mdp_core::{Config, ErrorClass, Lake, StageError};

use crate::{classify, describe};

/// Seconds a peeked message stays hidden at most (if the listing is
/// interrupted before it makes them visible again).
pub const PEEK_VISIBILITY_SECONDS: i32 = 60;
/// Seconds a message being redriven stays hidden before it is sent and deleted.
pub const REDRIVE_VISIBILITY_SECONDS: i32 = 120;
/// Long polling of each receive: an empty answer then means an empty queue
/// (short polling samples some servers only).
pub const RECEIVE_WAIT_SECONDS: i32 = 1;
/// What `mdp dlq redrive` says about replays.
pub const REDRIVE_SAFETY: &str = "every stage is idempotent (a replayed message rewrites the same \
     raw object, partitions and rows), so redriving is safe";

/// A stage's queue and dead-letter queue, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageQueues {
    pub stage: StageName,
    /// The queue the stage's function consumes (where a redrive sends).
    pub source_url: String,
    pub dlq_url: String,
}

impl StageQueues {
    /// `FETCH_QUEUE_URL` and `FETCH_DLQ_URL` (transform, load alike).
    /// Validate is invoked by the schedule and has neither.
    pub fn from_config(config: &Config, stage: StageName) -> Result<StageQueues, StageError> {
        let (source, source_var, dlq, dlq_var) = match stage {
            StageName::Validate => {
                return Err(StageError::permanent(
                    "validate has no queue nor dead-letter queue (the schedule invokes it); \
                     its failures are in its log",
                ));
            }
            StageName::Fetch => (
                &config.fetch_queue_url,
                "FETCH_QUEUE_URL",
                &config.fetch_dlq_url,
                "FETCH_DLQ_URL",
            ),
            StageName::Transform => (
                &config.transform_queue_url,
                "TRANSFORM_QUEUE_URL",
                &config.transform_dlq_url,
                "TRANSFORM_DLQ_URL",
            ),
            StageName::Load => (
                &config.load_queue_url,
                "LOAD_QUEUE_URL",
                &config.load_dlq_url,
                "LOAD_DLQ_URL",
            ),
        };
        let required = |value: &Option<String>, variable: &str| {
            value.clone().filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                StageError::permanent(format!(
                    "{variable} is not set: mdp dlq --stage {stage} needs the {stage} queue URLs \
                     (the stack's outputs, or `aws sqs get-queue-url`)"
                ))
            })
        };
        Ok(StageQueues {
            stage,
            source_url: required(source, source_var)?,
            dlq_url: required(dlq, dlq_var)?,
        })
    }

    /// FIFO queues (`….fifo`) keep message groups.
    pub fn is_fifo(&self) -> bool {
        self.dlq_url.ends_with(".fifo")
    }
}

/// A message in a dead-letter queue, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetteredMessage {
    pub message_id: String,
    pub body: String,
    /// Message attributes (`mdp.*` and any other): string and number values
    /// as they are, binary ones described.
    pub attributes: BTreeMap<String, String>,
    /// System attributes (`SentTimestamp`, `ApproximateReceiveCount`,
    /// `MessageGroupId`, …).
    pub system_attributes: BTreeMap<String, String>,
}

impl DeadLetteredMessage {
    fn from_sqs(m: &Message) -> DeadLetteredMessage {
        let attributes = m
            .message_attributes()
            .map(|attrs| {
                attrs
                    .iter()
                    .map(|(name, v)| {
                        let value = match (v.string_value(), v.binary_value()) {
                            (Some(s), _) => s.to_string(),
                            (None, Some(b)) => {
                                format!("({} value, {} bytes)", v.data_type(), b.as_ref().len())
                            }
                            (None, None) => format!("({} value)", v.data_type()),
                        };
                        (name.clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let system_attributes = m
            .attributes()
            .map(|attrs| {
                attrs
                    .iter()
                    .map(|(name, value)| (name.as_str().to_string(), value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        DeadLetteredMessage {
            message_id: m.message_id().unwrap_or_default().to_string(),
            body: m.body().unwrap_or_default().to_string(),
            attributes,
            system_attributes,
        }
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// The FIFO message group, if any.
    pub fn group_id(&self) -> Option<&str> {
        self.system_attributes
            .get(MessageSystemAttributeName::MessageGroupId.as_str())
            .map(String::as_str)
    }

    /// When SQS accepted the message (milliseconds since the epoch).
    pub fn sent_timestamp_ms(&self) -> Option<i64> {
        self.system_attributes
            .get(MessageSystemAttributeName::SentTimestamp.as_str())
            .and_then(|v| v.parse().ok())
    }

    /// `true` when the function dead-lettered it with its reason (`mdp.*`).
    pub fn has_failure_attributes(&self) -> bool {
        self.attribute(ATTR_REASON).is_some() || self.attribute(ATTR_ERROR_CLASS).is_some()
    }
}

/// A dead-lettered message and its lake failure record (by its message id).
#[derive(Debug, Clone, PartialEq)]
pub struct DlqEntry {
    pub message: DeadLetteredMessage,
    pub record: Option<FailureRecord>,
}

/// Where an entry's explanation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Explained {
    /// The `mdp.*` message attributes (the function dead-lettered it).
    Attributes,
    /// The lake failure record (the redrive policy dead-lettered it).
    FailureRecord,
    /// Neither (sent by something else, or the record was not written).
    Unexplained,
}

impl DlqEntry {
    pub fn explained(&self) -> Explained {
        if self.message.has_failure_attributes() {
            Explained::Attributes
        } else if self.record.is_some() {
            Explained::FailureRecord
        } else {
            Explained::Unexplained
        }
    }

    /// The ticker the body names, else the failure record's.
    pub fn ticker(&self) -> Option<String> {
        ticker_of_body(&self.message.body)
            .or_else(|| self.record.as_ref().and_then(|r| r.ticker.clone()))
    }

    /// The `mdp.stage` attribute, else the record's stage.
    pub fn stage(&self) -> Option<StageName> {
        self.message
            .attribute(ATTR_STAGE)
            .and_then(|s| s.parse().ok())
            .or_else(|| self.record.as_ref().map(|r| r.stage))
    }

    /// The `mdp.first_failure` attribute, else the record's first failure.
    pub fn first_failure(&self) -> Option<Timestamp> {
        self.message
            .attribute(ATTR_FIRST_FAILURE)
            .and_then(parse_time)
            .or_else(|| self.record.as_ref().map(|r| r.first_failure))
    }

    /// The `mdp.error_class` attribute, else the record's class.
    pub fn error_class(&self) -> Option<ErrorClass> {
        self.message
            .attribute(ATTR_ERROR_CLASS)
            .and_then(parse_error_class)
            .or_else(|| self.record.as_ref().map(|r| r.error_class))
    }

    /// The `mdp.reason` attribute, else the record's (last) reason.
    pub fn reason(&self) -> Option<&str> {
        self.message
            .attribute(ATTR_REASON)
            .or_else(|| self.record.as_ref().map(|r| r.reason.as_str()))
    }
}

/// What a dead-letter queue holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// Oldest first (by the time SQS accepted them).
    pub entries: Vec<DlqEntry>,
    /// The queue's `ApproximateNumberOfMessages` when the listing began.
    pub approximate_count: u64,
    /// Visible messages that could not be seen (a FIFO group holds more than
    /// a receive returns; or the count moved meanwhile).
    pub unseen: u64,
}

/// What [`redrive`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Messages sent to the stage's queue and deleted from the dead-letter queue.
    pub moved: usize,
    /// Messages that reached the dead-letter queue after the redrive began
    /// (possibly a redriven one failing again), left there.
    pub left_new: usize,
    /// Messages sent but not deleted (they are now in both queues: the
    /// stages are idempotent, the duplicate is harmless).
    pub not_deleted: Vec<String>,
    /// Why the redrive stopped early, if it did (a send was refused).
    pub stopped: Option<String>,
    /// The dead-letter queue's `ApproximateNumberOfMessages` at the end.
    pub approximate_left: u64,
}

fn sqs_error<E>(
    what: String,
    err: aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> StageError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let error = QueueError::Service {
        what,
        class: classify(&err),
        source: ServiceError(describe(&err)),
    };
    error.into()
}

/// The queue's `ApproximateNumberOfMessages` (visible messages).
pub async fn approximate_count(client: &Client, queue_url: &str) -> Result<u64, StageError> {
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| sqs_error(format!("SQS GetQueueAttributes of {queue_url}"), e))?;
    Ok(out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// One ReceiveMessage of up to ten messages with every attribute, hidden
/// for `visibility` seconds.
async fn receive(
    client: &Client,
    queue_url: &str,
    visibility: i32,
) -> Result<Vec<Message>, StageError> {
    let out = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(RECEIVE_WAIT_SECONDS)
        .visibility_timeout(visibility)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| sqs_error(format!("SQS ReceiveMessage from {queue_url}"), e))?;
    Ok(out.messages.unwrap_or_default())
}

/// Makes received messages visible again at once (ChangeMessageVisibility
/// to 0, ten per call). Failures are logged: those messages reappear when
/// their visibility timeout ends anyway.
async fn make_visible(client: &Client, queue_url: &str, receipts: &[String]) {
    for chunk in receipts.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect();
        match client
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) if out.failed().is_empty() => {}
            Ok(out) => tracing::warn!(
                queue_url,
                failed = out.failed().len(),
                "some peeked messages stay hidden until their visibility timeout ends"
            ),
            Err(e) => tracing::warn!(
                queue_url,
                error = %describe(&e),
                "peeked messages stay hidden until their visibility timeout ends"
            ),
        }
    }
}

/// Every message of the queue at `queue_url`, without consuming any: see
/// the module documentation. Returns the messages, oldest first, and the
/// `ApproximateNumberOfMessages` the listing was bounded by.
pub async fn peek(
    client: &Client,
    queue_url: &str,
) -> Result<(Vec<DeadLetteredMessage>, u64), StageError> {
    let approximate = approximate_count(client, queue_url).await?;
    let mut seen: HashMap<String, DeadLetteredMessage> = HashMap::new();
    let mut receipts: Vec<String> = Vec::new();
    let mut result = Ok(());
    // At least one receive: the count is approximate and may lag.
    loop {
        let batch = match receive(client, queue_url, PEEK_VISIBILITY_SECONDS).await {
            Ok(batch) => batch,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let mut new = 0;
        for m in &batch {
            receipts.extend(m.receipt_handle().map(str::to_string));
            let message = DeadLetteredMessage::from_sqs(m);
            if seen.insert(message.message_id.clone(), message).is_none() {
                new += 1;
            }
        }
        // Nothing more to see, or only messages seen already (a listing
        // slower than their visibility timeout).
        if new == 0 || seen.len() as u64 >= approximate {
            break;
        }
    }
    make_visible(client, queue_url, &receipts).await;
    result?;
    let mut messages: Vec<DeadLetteredMessage> = seen.into_values().collect();
    messages.sort_by(|a, b| {
        (a.sent_timestamp_ms(), &a.message_id).cmp(&(b.sent_timestamp_ms(), &b.message_id))
    });
    Ok((messages, approximate))
}

/// The failure record of each message, when a lake is given; a record that
/// cannot be read is logged and left out (the listing still shows the rest).
async fn with_records(
    lake: Option<&Lake>,
    stage: StageName,
    messages: Vec<DeadLetteredMessage>,
) -> Vec<DlqEntry> {
    let mut entries = Vec::with_capacity(messages.len());
    for message in messages {
        let record = match lake {
            Some(lake) if !message.message_id.is_empty() => {
                match lake.read_failure(stage, &message.message_id).await {
                    Ok(record) => record,
                    Err(e) => {
                        tracing::warn!(message_id = %message.message_id, error = %e, "no failure record");
                        None
                    }
                }
            }
            _ => None,
        };
        entries.push(DlqEntry { message, record });
    }
    entries
}

/// Every message of the stage's dead-letter queue, with its failure record
/// from `lake`, without consuming any.
pub async fn list(
    client: &Client,
    lake: Option<&Lake>,
    queues: &StageQueues,
) -> Result<Listing, StageError> {
    let (messages, approximate_count) = peek(client, &queues.dlq_url).await?;
    let unseen = approximate_count.saturating_sub(messages.len() as u64);
    Ok(Listing {
        entries: with_records(lake, queues.stage, messages).await,
        approximate_count,
        unseen,
    })
}

/// The message `message_id` of the stage's dead-letter queue, with its
/// failure record, without consuming anything; `None` when it is not there.
pub async fn show(
    client: &Client,
    lake: Option<&Lake>,
    queues: &StageQueues,
    message_id: &str,
) -> Result<Option<DlqEntry>, StageError> {
    let (messages, _) = peek(client, &queues.dlq_url).await?;
    let found: Vec<DeadLetteredMessage> = messages
        .into_iter()
        .filter(|m| m.message_id == message_id)
        .collect();
    Ok(with_records(lake, queues.stage, found).await.pop())
}

/// The failure record of `message_id` alone (a message `show` could not
/// see: another FIFO group's eleventh, or already redriven).
pub async fn failure_record(
    lake: &Lake,
    stage: StageName,
    message_id: &str,
) -> Result<Option<FailureRecord>, StageError> {
    Ok(lake.read_failure(stage, message_id).await?)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The deduplication id of a redriven message on a FIFO queue: its
/// dead-letter message id, so a redrive repeated after a crash between send
/// and delete is queued once, while the same body sent by a stage (whose
/// content-based id is the body's hash) is never taken for a duplicate of it.
pub fn redrive_deduplication_id(message_id: &str) -> String {
    let id: String = format!("redrive-{message_id}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
        .collect();
    id.chars().take(128).collect()
}

/// Moves every message of the stage's dead-letter queue back to the stage's
/// queue: each is sent (in its message group, with a deduplication id of its
/// own, on FIFO queues), then deleted from the dead-letter queue, and its
/// lake failure record removed (the sent copy is a new message with a new
/// id). Messages that reached the dead-letter queue after the redrive began
/// are left there (a message failing again at once is not redriven in a
/// loop). A refused send stops the redrive; the messages not moved stay.
pub async fn redrive(
    client: &Client,
    lake: Option<&Lake>,
    queues: &StageQueues,
) -> Result<RedriveReport, StageError> {
    let started = now_ms();
    let fifo = queues.source_url.ends_with(".fifo");
    let mut report = RedriveReport::default();
    // Messages left in the dead-letter queue: made visible again at the end.
    let mut left: HashMap<String, String> = HashMap::new();
    'receive: loop {
        let batch = receive(client, &queues.dlq_url, REDRIVE_VISIBILITY_SECONDS).await?;
        let mut new = 0;
        for (i, m) in batch.iter().enumerate() {
            let message = DeadLetteredMessage::from_sqs(m);
            let Some(receipt) = m.receipt_handle().map(str::to_string) else {
                continue;
            };
            if let Some(kept) = left.get_mut(&message.message_id) {
                // Seen and left before: keep its latest receipt handle.
                *kept = receipt;
                continue;
            }
            new += 1;
            if message
                .sent_timestamp_ms()
                .is_some_and(|sent| sent > started)
            {
                report.left_new += 1;
                left.insert(message.message_id, receipt);
                continue;
            }
            let mut send = client
                .send_message()
                .queue_url(&queues.source_url)
                .message_body(&message.body);
            if fifo {
                let group = message
                    .group_id()
                    .map(str::to_string)
                    .or_else(|| ticker_of_body(&message.body))
                    .unwrap_or_else(|| queues.stage.to_string());
                send = send
                    .message_group_id(group)
                    .message_deduplication_id(redrive_deduplication_id(&message.message_id));
            }
            if let Err(e) = send.send().await {
                report.stopped = Some(format!(
                    "SQS SendMessage to {}: {}",
                    queues.source_url,
                    describe(&e)
                ));
                // This message and the rest of its batch stay in the DLQ.
                for rest in &batch[i..] {
                    if let (Some(id), Some(receipt)) = (rest.message_id(), rest.receipt_handle()) {
                        left.insert(id.to_string(), receipt.to_string());
                    }
                }
                break 'receive;
            }
            match client
                .delete_message()
                .queue_url(&queues.dlq_url)
                .receipt_handle(&receipt)
                .send()
                .await
            {
                Ok(_) => {
                    report.moved += 1;
                    if let Some(lake) = lake
                        && let Err(e) = lake.clear_failure(queues.stage, &message.message_id).await
                    {
                        tracing::warn!(message_id = %message.message_id, error = %e, "failure record not removed");
                    }
                }
                Err(e) => {
                    tracing::warn!(message_id = %message.message_id, error = %describe(&e), "sent but not deleted from the dead-letter queue");
                    report.not_deleted.push(message.message_id);
                }
            }
        }
        if new == 0 {
            break;
        }
    }
    let receipts: Vec<String> = left.into_values().collect();
    make_visible(client, &queues.dlq_url, &receipts).await;
    report.approximate_left = approximate_count(client, &queues.dlq_url).await?;
    Ok(report)
}
