//! The stack the end-to-end tests run on: moto's S3, SQS and Secrets Manager,
//! the four functions wired as the template wires them, and the event source
//! mapping played by hand (receive, call the handler, delete what succeeded).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use fetch::FetchFunction;
use load::LoadFunction;
use mdp_aws::{LambdaEnv, SqsQueue, sdk_config_for, sqs_client};
use mdp_chart::{ChartClient, ChartClientSettings};
use mdp_core::messages::ScheduleEvent;
use mdp_core::queue::StageName;
use mdp_core::{CuratedRow, Lake};
use mdp_devtools::{ChartReplayServer, MotoServer};
use mdp_lake::read_history;
use mdp_lambda::BatchContext;
use mdp_tests::*;
use mdp_warehouse::{RowWarehouse, connect_rows};
use std::collections::HashSet;
use std::sync::Arc;
use transform::TransformFunction;
use validate::ValidateFunction;

/// The template's redrive setting.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// The test queues' own visibility timeout, far below the functions' first retry delay.
pub const QUEUE_VISIBILITY_SECS: u64 = 2;

pub struct Stack {
    pub _moto: Arc<MotoServer>,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub queues: Queues,
    pub validate: ValidateFunction,
    pub fetch: FetchFunction,
    pub transform: TransformFunction,
    pub load: LoadFunction,
    pub warehouse: Arc<dyn RowWarehouse>,
    pub scratch: Scratch,
}

#[derive(Clone)]
pub struct Queues {
    pub fetch: String,
    pub fetch_dlq: String,
    pub transform: String,
    pub transform_dlq: String,
    pub load: String,
    pub load_dlq: String,
}

/// A queue and its dead-letter queue; FIFO ones (ticker-grouped, as the
/// template makes the transform and load queues) when `fifo`, with the
/// queue's own visibility timeout.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    fifo: bool,
    visibility_secs: u64,
) -> (String, String) {
    let suffix = if fifo { ".fifo" } else { "" };
    let fifo_attributes =
        |request: aws_sdk_sqs::operation::create_queue::builders::CreateQueueFluentBuilder| {
            if fifo {
                request
                    .attributes(QueueAttributeName::FifoQueue, "true")
                    .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
            } else {
                request
            }
        };
    let dlq = fifo_attributes(sqs.create_queue().queue_name(format!("{name}-dlq{suffix}")))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{MAX_RECEIVE_COUNT}"}}"#);
    let url = fifo_attributes(sqs.create_queue().queue_name(format!("{name}{suffix}")))
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        // Short, so that a redelivery delay the functions forgot to set would show.
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (url, dlq)
}

/// Bucket, queues, secret and the four functions, wired as the template wires them.
pub async fn stack(chart: &ChartReplayServer, max_retries: u32) -> Stack {
    stack_with_visibility(chart, max_retries, QUEUE_VISIBILITY_SECS).await
}

/// [`stack`] with the queues' own visibility timeout (the load test sets a
/// long one, so that only the duplicates it makes are delivered twice).
pub async fn stack_with_visibility(
    chart: &ChartReplayServer,
    max_retries: u32,
    visibility_secs: u64,
) -> Stack {
    let moto = MotoServer::shared().expect("moto_server (pip install 'moto[server]')");
    let sdk = sdk_config_for(&moto.endpoint).await;
    let sqs = sqs_client(&sdk);
    let s3 = mdp_aws::s3_client(&sdk);
    let id = format!("{:08x}", fastrand_u32());
    let bucket = format!("mdp-lake-{id}");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let (fetch_q, fetch_dlq) =
        create_queue(&sqs, &format!("fetch-{id}"), false, visibility_secs).await;
    let (transform_q, transform_dlq) =
        create_queue(&sqs, &format!("transform-{id}"), true, visibility_secs).await;
    let (load_q, load_dlq) = create_queue(&sqs, &format!("load-{id}"), true, visibility_secs).await;
    let queues = Queues {
        fetch: fetch_q,
        fetch_dlq,
        transform: transform_q,
        transform_dlq,
        load: load_q,
        load_dlq,
    };

    // The warehouse connection is read from Secrets Manager, as in AWS.
    let mut scratch = Scratch::new(chart, Store::Postgres);
    let schema = scratch.schema.clone().unwrap();
    let secret = secretsmanager(&sdk)
        .create_secret()
        .name(format!("warehouse-{id}"))
        .secret_string(format!(
            r#"{{"engine":"postgres","host":"127.0.0.1","port":5432,"username":"postgres","password":"unused-with-trust","dbname":"{}"}}"#,
            postgres_url().rsplit('/').next().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    scratch
        .set("MARKET_DATA_LAKE_URI", &format!("s3://{bucket}/lake"))
        .set("MARKET_DATA_MAX_RETRIES", &max_retries.to_string())
        .set("WAREHOUSE_URL", "sqlite://unused-the-secret-wins.db")
        .set("WAREHOUSE_SECRET_ARN", &secret)
        .set("WAREHOUSE_SCHEMA", &schema)
        .set("FETCH_QUEUE_URL", &queues.fetch)
        .set("TRANSFORM_QUEUE_URL", &queues.transform)
        .set("LOAD_QUEUE_URL", &queues.load)
        .set("FETCH_DLQ_URL", &queues.fetch_dlq)
        .set("TRANSFORM_DLQ_URL", &queues.transform_dlq)
        .set("LOAD_DLQ_URL", &queues.load_dlq);
    let config = scratch.config();
    let env = LambdaEnv::new(config, sdk);
    let warehouse_config = env.warehouse_config().await.unwrap();
    assert!(
        warehouse_config
            .warehouse_url
            .starts_with("postgres://postgres:")
    );
    let warehouse = connect_rows(&warehouse_config).await.unwrap();
    warehouse.migrate().await.unwrap();
    let queue = Arc::new(SqsQueue::new(sqs.clone()));
    // As the functions' mains set them: fetch concurrent, the others one by one.
    let batch =
        |stage: StageName, source: &str, dlq: &str, records_in_flight: usize| BatchContext {
            queue: queue.clone(),
            source_queue_url: source.to_string(),
            dead_letter_queue_url: Some(dlq.to_string()),
            records_in_flight,
            stage,
            lake: Some(env.lake.clone()),
        };
    Stack {
        validate: ValidateFunction {
            config: env.config.clone(),
            lake: env.lake.clone(),
            queue: queue.clone(),
            fetch_queue_url: queues.fetch.clone(),
            load_queue_url: queues.load.clone(),
        },
        fetch: FetchFunction {
            lake: env.lake.clone(),
            source: Arc::new(ChartClient::new(ChartClientSettings::from(&env.config)).unwrap()),
            queue: queue.clone(),
            transform_queue_url: queues.transform.clone(),
            batch: batch(StageName::Fetch, &queues.fetch, &queues.fetch_dlq, 10),
        },
        transform: TransformFunction {
            lake: env.lake.clone(),
            compression: env.config.parquet_compression,
            queue: queue.clone(),
            load_queue_url: queues.load.clone(),
            batch: batch(
                StageName::Transform,
                &queues.transform,
                &queues.transform_dlq,
                1,
            ),
        },
        load: LoadFunction {
            lake: env.lake.clone(),
            warehouse: warehouse.clone(),
            strategy: env.config.load_strategy,
            batch: batch(StageName::Load, &queues.load, &queues.load_dlq, 1),
        },
        _moto: moto,
        sqs,
        s3,
        bucket,
        queues,
        warehouse,
        scratch,
    }
}

pub fn secretsmanager(sdk: &aws_config::SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(sdk)
}

pub fn fastrand_u32() -> u32 {
    fastrand::u32(..)
}

/// Receives up to 10 messages as Lambda's poller would.
pub async fn receive(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> SqsEvent {
    receive_up_to(sqs, queue_url, 10).await
}

/// Receives up to `batch_size` (1 to 10) messages, the event source mapping's `BatchSize`.
pub async fn receive_up_to(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch_size: i32,
) -> SqsEvent {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(batch_size)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .send()
        .await
        .unwrap();
    let mut event = SqsEvent::default();
    for m in out.messages.unwrap_or_default() {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.receipt_handle = m.receipt_handle.clone();
        record.body = m.body.clone();
        for (k, v) in m.attributes.unwrap_or_default() {
            record.attributes.insert(k.as_str().to_string(), v);
        }
        record.event_source = Some("aws:sqs".into());
        event.records.push(record);
    }
    event
}

/// Deletes the records the handler did not report as failed; returns how many it deleted.
pub async fn settle(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    event: &SqsEvent,
    response: &SqsBatchResponse,
) -> usize {
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let mut deleted = 0;
    for r in &event.records {
        if !failed.contains(r.message_id.as_deref().unwrap_or("")) {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(r.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
            deleted += 1;
        }
    }
    deleted
}

#[derive(Clone, Copy)]
pub enum Stage {
    Fetch,
    Transform,
    Load,
}

impl Stack {
    pub fn queue_of(&self, stage: Stage) -> &str {
        match stage {
            Stage::Fetch => &self.queues.fetch,
            Stage::Transform => &self.queues.transform,
            Stage::Load => &self.queues.load,
        }
    }

    pub async fn call(&self, stage: Stage, event: SqsEvent) -> SqsBatchResponse {
        match stage {
            Stage::Fetch => self.fetch.handle(event).await,
            Stage::Transform => self.transform.handle(event).await,
            Stage::Load => self.load.handle(event).await,
        }
    }

    /// Delivers every visible message of the stage's queue `copies` times
    /// (copies > 1: at-least-once duplicates, the second pair concurrently),
    /// then deletes the ones not reported failed. Returns how many records
    /// were handled and the receipt handles of those reported failed.
    pub async fn pump(&self, stage: Stage, copies: usize) -> (usize, Vec<String>) {
        let url = self.queue_of(stage).to_string();
        let (mut handled, mut failed) = (0, Vec::new());
        loop {
            let event = receive(&self.sqs, &url).await;
            if event.records.is_empty() {
                return (handled, failed);
            }
            handled += event.records.len();
            let mut response = self.call(stage, event.clone()).await;
            if copies > 1 {
                let (a, b) = tokio::join!(
                    self.call(stage, event.clone()),
                    self.call(stage, event.clone())
                );
                assert_eq!(a.batch_item_failures, response.batch_item_failures);
                assert_eq!(b.batch_item_failures, response.batch_item_failures);
                response = b;
            }
            let failed_ids: HashSet<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            failed.extend(
                event
                    .records
                    .iter()
                    .filter(|r| failed_ids.contains(r.message_id.as_deref().unwrap_or("")))
                    .filter_map(|r| r.receipt_handle.clone()),
            );
            settle(&self.sqs, &url, &event, &response).await;
        }
    }

    pub async fn run_chain(&self, event: serde_json::Value, copies: usize) {
        let planned = self.validate.handle(event, d("2021-12-31")).await.unwrap();
        assert!(!planned.sent.is_empty());
        for stage in [Stage::Fetch, Stage::Transform, Stage::Load] {
            let (_, failed) = self.pump(stage, copies).await;
            assert!(failed.is_empty(), "no failures expected in this chain");
        }
    }

    pub async fn s3_keys(&self) -> Vec<String> {
        self.s3_keys_under("lake/").await
    }

    /// Every key under `prefix`, sorted, over as many pages as S3 returns.
    pub async fn s3_keys_under(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            keys.extend(
                out.contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| o.key),
            );
            token = out.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    pub async fn s3_object(&self, key: &str) -> Vec<u8> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }

    pub async fn queue_len(&self, url: &str) -> usize {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let n = |k: QueueAttributeName| {
            attrs
                .get(&k)
                .map(|v| v.parse::<usize>().unwrap())
                .unwrap_or(0)
        };
        n(QueueAttributeName::ApproximateNumberOfMessages)
            + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }

    pub async fn close(self) {
        self.warehouse.close().await;
        self.load.warehouse.close().await;
        self.scratch.cleanup().await;
    }
}

/// The same request run by `mdp run` on a filesystem lake and its own warehouse.
pub async fn reference_run(
    chart: &ChartReplayServer,
    tickers: &[&str],
    start: &str,
    end: &str,
) -> (Scratch, Vec<String>, Vec<CuratedRow>) {
    let scratch = Scratch::new(chart, Store::Postgres);
    let pipeline = scratch.pipeline().await;
    let event = ScheduleEvent {
        tickers: Some(tickers.iter().map(|t| t.to_string()).collect()),
        start: Some(d(start)),
        end: Some(d(end)),
        date: None,
    };
    let summary = pipeline.run(&event, d(end)).await.unwrap();
    assert!(summary.all_succeeded(), "{}", summary.render());
    let mut keys = Vec::new();
    for prefix in ["raw/", "curated/", "state/"] {
        keys.extend(pipeline.lake.store().list(prefix).await.unwrap());
    }
    keys.sort();
    let rows = warehouse_rows(&pipeline.config, None).await;
    pipeline.warehouse.close().await;
    (scratch, keys, rows)
}

pub async fn lake_rows(lake: &Lake, tickers: &[&str]) -> Vec<CuratedRow> {
    let mut all = Vec::new();
    for t in tickers {
        all.extend(read_history(lake, &ticker(t)).await.unwrap());
    }
    all
}

pub fn chain_event(tickers: &[&str], start: &str, end: &str) -> serde_json::Value {
    serde_json::json!({"tickers": tickers, "start": start, "end": end})
}
