//! Port to the queues between stages (SQS in AWS), with an in-memory adapter
//! for one process and tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

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
}

/// Messages kept in memory, per queue URL, in send order.
#[derive(Debug, Default)]
pub struct InMemoryQueue {
    sent: Mutex<HashMap<String, Vec<String>>>,
    visibility: Mutex<Vec<(String, String, Duration)>>,
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
}
