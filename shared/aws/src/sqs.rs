//! The stage queues on SQS (DESIGN.md section 3).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};
use mdp_core::ErrorClass;
use mdp_core::queue::{
    ATTR_REASON, DeadLetter, GroupedMessage, MAX_BATCH, MAX_REASON_BYTES, Queue, QueueError,
    ServiceError, safe_reason,
};

use crate::{classify, describe};

/// The largest message body SQS takes here, in bytes (256 KiB, the limit
/// DESIGN.md section 3 designs for; messages are claim checks, far smaller).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The largest sum of the bodies of one SendMessageBatch, in bytes.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// The longest visibility timeout SQS accepts: 12 hours, in seconds.
pub const MAX_VISIBILITY_TIMEOUT: u64 = 43_200;

/// A [`Queue`] on SQS; queue URLs are passed per call.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
}

impl SqsQueue {
    pub fn new(client: Client) -> SqsQueue {
        SqsQueue { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn sdk_error<E>(
    what: String,
    err: aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> QueueError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    QueueError::Service {
        what,
        class: classify(&err),
        source: ServiceError(describe(&err)),
    }
}

/// Splits `bodies` into SendMessageBatch chunks: at most [`MAX_BATCH`]
/// messages and [`MAX_BATCH_BYTES`] bytes each. Every body must already be
/// at most [`MAX_MESSAGE_BYTES`].
fn chunks(bodies: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, body) in bodies.iter().enumerate() {
        if i - start == MAX_BATCH || bytes + body.len() > MAX_BATCH_BYTES {
            out.push(&bodies[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += body.len();
    }
    if start < bodies.len() {
        out.push(&bodies[start..]);
    }
    out
}

/// The error for a batch with `failed` entries (not empty) out of `sent`.
/// A sender fault (invalid body, bad attribute…) fails the same way every
/// time, so any makes the error permanent; otherwise the trouble is on the
/// SQS side and worth a retry.
fn batch_failure(queue_url: &str, sent: usize, failed: &[BatchResultErrorEntry]) -> QueueError {
    let sender_fault = failed.iter().any(|f| f.sender_fault());
    let first = failed
        .iter()
        .find(|f| f.sender_fault() == sender_fault)
        .expect("at least one failed entry");
    QueueError::Service {
        what: format!(
            "SQS SendMessageBatch to {queue_url}: {} of {sent} messages not accepted",
            failed.len()
        ),
        class: if sender_fault {
            ErrorClass::Permanent
        } else {
            ErrorClass::Transient
        },
        source: ServiceError(format!(
            "entry {}: {}: {}",
            first.id(),
            first.code(),
            first.message().unwrap_or("no message"),
        )),
    }
}

/// `delay` in whole seconds for SQS: a fraction of a second rounds up (a
/// delay never becomes "visible now"), capped at [`MAX_VISIBILITY_TIMEOUT`].
fn visibility_seconds(delay: Duration) -> i32 {
    let secs = delay
        .as_secs()
        .saturating_add(u64::from(delay.subsec_nanos() > 0));
    secs.min(MAX_VISIBILITY_TIMEOUT) as i32
}

impl SqsQueue {
    /// Sends (group, body) pairs in SendMessageBatch calls of at most ten
    /// messages and 256 KiB.
    async fn send_entries(
        &self,
        queue_url: &str,
        messages: &[(Option<&str>, &String)],
    ) -> Result<(), QueueError> {
        let bodies: Vec<String> = messages.iter().map(|(_, b)| (*b).clone()).collect();
        // Check every body before sending any: nothing is half sent for a
        // body SQS would refuse anyway.
        for (i, body) in bodies.iter().enumerate() {
            if body.is_empty() {
                return Err(QueueError::Empty {
                    queue_url: queue_url.to_string(),
                    index: i,
                });
            }
            if body.len() > MAX_MESSAGE_BYTES {
                return Err(QueueError::TooLarge {
                    queue_url: queue_url.to_string(),
                    index: i,
                    bytes: body.len(),
                    limit: MAX_MESSAGE_BYTES,
                });
            }
        }
        let mut offset = 0;
        for chunk in chunks(&bodies) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .set_message_group_id(messages[offset + i].0.map(str::to_string))
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            offset += chunk.len();
            let out = self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_error(format!("SQS SendMessageBatch to {queue_url}"), e))?;
            if !out.failed().is_empty() {
                return Err(batch_failure(queue_url, chunk.len(), out.failed()));
            }
        }
        Ok(())
    }
}

/// The bytes SQS counts for a string message attribute: its name, its data
/// type and its value.
fn attribute_bytes(name: &str, value: &str) -> usize {
    name.len() + "String".len() + value.len()
}

/// The attributes of `letter` that fit beside its body in one message of at
/// most [`MAX_MESSAGE_BYTES`] (SQS counts body and attributes together): the
/// reason is cut to what is left, at most [`MAX_REASON_BYTES`], and left out
/// when nothing is left (SQS refuses an empty value); all are left out when
/// even the others do not fit (a body at the limit).
fn letter_attributes(letter: &DeadLetter) -> Vec<(&'static str, String)> {
    let mut attributes = letter.attributes(MAX_REASON_BYTES);
    let others: usize = attributes
        .iter()
        .filter(|(name, _)| *name != ATTR_REASON)
        .map(|(name, value)| attribute_bytes(name, value))
        .sum();
    let fixed = letter.body.len() + others + attribute_bytes(ATTR_REASON, "");
    let Some(room) = MAX_MESSAGE_BYTES.checked_sub(fixed) else {
        let without_reason = letter.body.len() + others;
        if without_reason > MAX_MESSAGE_BYTES {
            return Vec::new();
        }
        attributes.retain(|(name, _)| *name != ATTR_REASON);
        return attributes;
    };
    for (name, value) in &mut attributes {
        if *name == ATTR_REASON {
            *value = safe_reason(&letter.reason, room.min(MAX_REASON_BYTES));
        }
    }
    attributes.retain(|(_, value)| !value.is_empty());
    attributes
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue_url: &str, bodies: &[String]) -> Result<(), QueueError> {
        let messages: Vec<(Option<&str>, &String)> = bodies.iter().map(|b| (None, b)).collect();
        self.send_entries(queue_url, &messages).await
    }

    /// On a FIFO queue (`….fifo`) each message goes in its group; a standard
    /// queue has no groups and gets the bodies alone.
    async fn send_grouped(
        &self,
        queue_url: &str,
        messages: &[GroupedMessage],
    ) -> Result<(), QueueError> {
        let fifo = queue_url.ends_with(".fifo");
        let messages: Vec<(Option<&str>, &String)> = messages
            .iter()
            .map(|m| (fifo.then_some(m.group_id.as_str()), &m.body))
            .collect();
        self.send_entries(queue_url, &messages).await
    }

    async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(visibility_seconds(delay))
            .send()
            .await
            .map_err(|e| sdk_error(format!("SQS ChangeMessageVisibility on {queue_url}"), e))?;
        Ok(())
    }

    /// One SendMessage with the letter's `mdp.*` attributes
    /// ([`DeadLetter::attributes`], fitted to the message size). On a FIFO
    /// queue (`….fifo`) in the letter's group (the stage's name when it has
    /// none) with the letter's own deduplication id, so the same body failing
    /// again after a redrive is not dropped by content-based deduplication.
    async fn dead_letter(&self, queue_url: &str, letter: &DeadLetter) -> Result<(), QueueError> {
        if letter.body.is_empty() {
            return Err(QueueError::Empty {
                queue_url: queue_url.to_string(),
                index: 0,
            });
        }
        if letter.body.len() > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge {
                queue_url: queue_url.to_string(),
                index: 0,
                bytes: letter.body.len(),
                limit: MAX_MESSAGE_BYTES,
            });
        }
        let mut request = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(&letter.body);
        for (name, value) in letter_attributes(letter) {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .expect("the data type is set");
            request = request.message_attributes(name, value);
        }
        if queue_url.ends_with(".fifo") {
            let group = letter
                .group_id
                .clone()
                .unwrap_or_else(|| letter.stage.to_string());
            request = request
                .message_group_id(group)
                .message_deduplication_id(letter.deduplication_id());
        }
        request
            .send()
            .await
            .map_err(|e| sdk_error(format!("SQS SendMessage (dead letter) to {queue_url}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_ten_messages_and_256_kib_at_most() {
        let small: Vec<String> = (0..23).map(|i| format!("m{i}")).collect();
        let sizes: Vec<usize> = chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [10, 10, 3]);
        assert!(chunks(&[]).is_empty());

        let big = "x".repeat(100 * 1024);
        let bodies = vec![big.clone(), big.clone(), big.clone(), "y".into(), big];
        let sizes: Vec<usize> = chunks(&bodies).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [2, 3]);
        let full = vec!["z".repeat(MAX_MESSAGE_BYTES); 2];
        assert_eq!(chunks(&full).len(), 2);
    }

    fn failure(id: &str, sender_fault: bool, code: &str) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .sender_fault(sender_fault)
            .code(code)
            .message(format!("{code} happened"))
            .build()
            .unwrap()
    }

    #[test]
    fn failed_entries_are_permanent_only_for_a_sender_fault() {
        let err = batch_failure("https://q/1", 10, &[failure("3", false, "InternalError")]);
        assert_eq!(err.class(), ErrorClass::Transient);
        assert_eq!(
            mdp_core::error::chain(&err),
            "SQS SendMessageBatch to https://q/1: 1 of 10 messages not accepted: \
             entry 3: InternalError: InternalError happened"
        );
        let err = batch_failure(
            "https://q/1",
            10,
            &[
                failure("1", false, "InternalError"),
                failure("4", true, "InvalidMessageContents"),
            ],
        );
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            mdp_core::error::chain(&err).contains("2 of 10")
                && mdp_core::error::chain(&err).contains("entry 4: InvalidMessageContents"),
            "{err}"
        );
    }

    #[test]
    fn dead_letter_attributes_fit_beside_the_body() {
        use mdp_core::queue::{ATTR_STAGE, ELLIPSIS, StageName};
        let size = |letter: &DeadLetter, attributes: &[(&str, String)]| {
            letter.body.len()
                + attributes
                    .iter()
                    .map(|(n, v)| attribute_bytes(n, v))
                    .sum::<usize>()
        };
        let letter = |body_bytes: usize, reason: &str| {
            DeadLetter::permanent(
                StageName::Transform,
                "b".repeat(body_bytes),
                Some("MSFT".into()),
                reason,
            )
        };
        // A small body: the whole reason, up to MAX_REASON_BYTES.
        let small = letter(200, "no such symbol");
        let attributes = letter_attributes(&small);
        assert_eq!(attributes.len(), 4);
        assert_eq!(attributes[3], (ATTR_REASON, "no such symbol".to_string()));
        let long = letter(200, &"€".repeat(MAX_REASON_BYTES));
        let reason = &letter_attributes(&long)[3].1;
        assert!(reason.len() <= MAX_REASON_BYTES && reason.ends_with(ELLIPSIS));
        // A large body leaves less room: the reason is cut to it.
        for body in [MAX_MESSAGE_BYTES - 3000, MAX_MESSAGE_BYTES - 200] {
            let big = letter(body, &"é".repeat(MAX_REASON_BYTES));
            let attributes = letter_attributes(&big);
            assert!(size(&big, &attributes) <= MAX_MESSAGE_BYTES, "{body}");
            assert_eq!(attributes.len(), 4, "{body}");
            assert!(attributes[3].1.ends_with(ELLIPSIS), "{body}");
        }
        // No room for a reason: left out; none for anything: no attributes.
        let full = letter(MAX_MESSAGE_BYTES - 110, "why");
        let attributes = letter_attributes(&full);
        assert!(attributes.iter().all(|(n, _)| *n != ATTR_REASON));
        assert!(attributes.iter().any(|(n, _)| *n == ATTR_STAGE));
        assert!(size(&full, &attributes) <= MAX_MESSAGE_BYTES);
        assert!(letter_attributes(&letter(MAX_MESSAGE_BYTES, "why")).is_empty());
        // An empty reason is no attribute (SQS refuses empty values).
        assert_eq!(letter_attributes(&letter(10, "")).len(), 3);
    }

    #[test]
    fn visibility_is_whole_seconds_up_to_twelve_hours() {
        assert_eq!(visibility_seconds(Duration::ZERO), 0);
        assert_eq!(visibility_seconds(Duration::from_millis(1)), 1);
        assert_eq!(visibility_seconds(Duration::from_secs(30)), 30);
        assert_eq!(visibility_seconds(Duration::from_millis(30_500)), 31);
        assert_eq!(visibility_seconds(Duration::from_secs(43_200)), 43_200);
        assert_eq!(visibility_seconds(Duration::from_secs(100_000)), 43_200);
        assert_eq!(visibility_seconds(Duration::MAX), 43_200);
    }
}
