//! The four functions chained over real wire protocols: moto's S3, SQS and
//! Secrets Manager on a loopback port, the machine's Postgres, and the local
//! chart server. The test plays Lambda's event source mapping: it receives
//! from a queue, builds the `SqsEvent`, calls the handler, and deletes only
//! the messages the handler did not report as failed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use fetch::FetchFunction;
use load::LoadFunction;
use mdp_aws::{LambdaEnv, SqsQueue, sdk_config_for, sqs_client};
use mdp_chart::{ChartClient, ChartClientSettings};
use mdp_core::messages::ScheduleEvent;
use mdp_core::{CuratedRow, Lake};
use mdp_devtools::{ChartReplayServer, MotoServer, Reply};
use mdp_lake::{decode_parquet, read_history};
use mdp_lambda::BatchContext;
use mdp_tests::*;
use mdp_warehouse::{RowWarehouse, connect_rows};
use transform::TransformFunction;
use validate::ValidateFunction;

/// The template's redrive setting.
const MAX_RECEIVE_COUNT: u32 = 5;
/// The test queues' own visibility timeout, far below the functions' first retry delay.
const QUEUE_VISIBILITY_SECS: u64 = 2;

struct Stack {
    _moto: Arc<MotoServer>,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    bucket: String,
    queues: Queues,
    validate: ValidateFunction,
    fetch: FetchFunction,
    transform: TransformFunction,
    load: LoadFunction,
    warehouse: Arc<dyn RowWarehouse>,
    scratch: Scratch,
}

#[derive(Clone)]
struct Queues {
    fetch: String,
    fetch_dlq: String,
    transform: String,
    transform_dlq: String,
    load: String,
    load_dlq: String,
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
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
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        // Short, so that a redelivery delay the functions forgot to set would show.
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            QUEUE_VISIBILITY_SECS.to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (url, dlq)
}

/// Bucket, queues, secret and the four functions, wired as the template wires them.
async fn stack(chart: &ChartReplayServer, max_retries: u32) -> Stack {
    let moto = MotoServer::shared().expect("moto_server (pip install 'moto[server]')");
    let sdk = sdk_config_for(&moto.endpoint).await;
    let sqs = sqs_client(&sdk);
    let s3 = mdp_aws::s3_client(&sdk);
    let id = format!("{:08x}", fastrand_u32());
    let bucket = format!("mdp-lake-{id}");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let (fetch_q, fetch_dlq) = create_queue(&sqs, &format!("fetch-{id}")).await;
    let (transform_q, transform_dlq) = create_queue(&sqs, &format!("transform-{id}")).await;
    let (load_q, load_dlq) = create_queue(&sqs, &format!("load-{id}")).await;
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
    let batch = |source: &str, dlq: &str, records_in_flight: usize| BatchContext {
        queue: queue.clone(),
        source_queue_url: source.to_string(),
        dead_letter_queue_url: Some(dlq.to_string()),
        records_in_flight,
    };
    Stack {
        validate: ValidateFunction {
            config: env.config.clone(),
            lake: env.lake.clone(),
            queue: queue.clone(),
            fetch_queue_url: queues.fetch.clone(),
        },
        fetch: FetchFunction {
            lake: env.lake.clone(),
            source: Arc::new(ChartClient::new(ChartClientSettings::from(&env.config)).unwrap()),
            queue: queue.clone(),
            transform_queue_url: queues.transform.clone(),
            batch: batch(&queues.fetch, &queues.fetch_dlq, 10),
        },
        transform: TransformFunction {
            lake: env.lake.clone(),
            compression: env.config.parquet_compression,
            queue: queue.clone(),
            load_queue_url: queues.load.clone(),
            batch: batch(&queues.transform, &queues.transform_dlq, 1),
        },
        load: LoadFunction {
            lake: env.lake.clone(),
            warehouse: warehouse.clone(),
            strategy: env.config.load_strategy,
            batch: batch(&queues.load, &queues.load_dlq, 1),
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

fn secretsmanager(sdk: &aws_config::SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(sdk)
}

fn fastrand_u32() -> u32 {
    fastrand::u32(..)
}

/// Receives up to 10 messages as Lambda's poller would.
async fn receive(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> SqsEvent {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
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
async fn settle(
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
enum Stage {
    Fetch,
    Transform,
    Load,
}

impl Stack {
    fn queue_of(&self, stage: Stage) -> &str {
        match stage {
            Stage::Fetch => &self.queues.fetch,
            Stage::Transform => &self.queues.transform,
            Stage::Load => &self.queues.load,
        }
    }

    async fn call(&self, stage: Stage, event: SqsEvent) -> SqsBatchResponse {
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
    async fn pump(&self, stage: Stage, copies: usize) -> (usize, Vec<String>) {
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

    async fn run_chain(&self, event: serde_json::Value, copies: usize) {
        let planned = self.validate.handle(event, d("2021-12-31")).await.unwrap();
        assert!(!planned.sent.is_empty());
        for stage in [Stage::Fetch, Stage::Transform, Stage::Load] {
            let (_, failed) = self.pump(stage, copies).await;
            assert!(failed.is_empty(), "no failures expected in this chain");
        }
    }

    async fn s3_keys(&self) -> Vec<String> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix("lake/")
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = out
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| o.key)
            .collect();
        keys.sort();
        keys
    }

    async fn s3_object(&self, key: &str) -> Vec<u8> {
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

    async fn queue_len(&self, url: &str) -> usize {
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

    async fn close(self) {
        self.warehouse.close().await;
        self.load.warehouse.close().await;
        self.scratch.cleanup().await;
    }
}

/// The same request run by `mdp run` on a filesystem lake and its own warehouse.
async fn reference_run(
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

async fn lake_rows(lake: &Lake, tickers: &[&str]) -> Vec<CuratedRow> {
    let mut all = Vec::new();
    for t in tickers {
        all.extend(read_history(lake, &ticker(t)).await.unwrap());
    }
    all
}

fn chain_event(tickers: &[&str], start: &str, end: &str) -> serde_json::Value {
    serde_json::json!({"tickers": tickers, "start": start, "end": end})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_functions_match_the_one_process_run() {
    let chart = recorded_server().await;
    let tickers = ["MSFT", "NVDA", "BTC-USD"];
    let (reference, ref_keys, ref_rows) =
        reference_run(&chart, &tickers, "2020-06-01", "2021-12-31").await;
    let stack = stack(&chart, 3).await;
    stack
        .run_chain(chain_event(&tickers, "2020-06-01", "2021-12-31"), 1)
        .await;

    // The same objects under the S3 prefix as in the filesystem lake.
    let keys: Vec<String> = stack
        .s3_keys()
        .await
        .iter()
        .map(|k| k.strip_prefix("lake/").unwrap().to_string())
        .collect();
    assert_eq!(keys, ref_keys);
    // Raw responses land byte for byte as the server sent them.
    let raw_key = keys
        .iter()
        .find(|k| k.starts_with("raw/yahoo/chart/ticker=MSFT/"))
        .unwrap();
    let reference_raw = std::fs::read(reference.lake_dir().join(raw_key)).unwrap();
    assert_eq!(
        stack.s3_object(&format!("lake/{raw_key}")).await,
        reference_raw
    );
    // Curated Parquet read from S3 equals the filesystem run, value for value.
    let part = "curated/market_data/ticker=NVDA/year=2021/part-0.parquet";
    let from_s3 = decode_parquet(&stack.s3_object(&format!("lake/{part}")).await).unwrap();
    let from_fs = decode_parquet(&std::fs::read(reference.lake_dir().join(part)).unwrap()).unwrap();
    assert_same_values(&from_s3, &from_fs);
    let s3_rows = lake_rows(&stack.validate.lake, &tickers).await;
    // MSFT and NVDA: 252 sessions less the 19 of January 2022; BTC-USD: the
    // 218 days 2020-06-01..2021-01-04 less 3 null bars in October.
    assert_eq!(s3_rows.len(), 233 + 233 + 215);
    // The warehouse holds the lake's rows, equal to the one-process run.
    let wh = stack.warehouse.read_rows(None).await.unwrap();
    assert_same_values(&wh, &ref_rows);
    let mut sorted_lake = s3_rows.clone();
    sorted_lake
        .sort_by(|a, b| (a.ticker.as_bytes(), a.date()).cmp(&(b.ticker.as_bytes(), b.date())));
    assert_eq!(
        wh, sorted_lake,
        "warehouse rows are the S3 lake's rows, timestamps included"
    );
    for dlq in [
        &stack.queues.fetch_dlq,
        &stack.queues.transform_dlq,
        &stack.queues.load_dlq,
    ] {
        assert_eq!(stack.queue_len(dlq).await, 0);
    }
    reference.cleanup().await;
    stack.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_leaves_the_same_lake_and_warehouse() {
    let chart = recorded_server().await;
    let tickers = ["MSFT", "NVDA"];
    let once = stack(&chart, 3).await;
    once.run_chain(chain_event(&tickers, "2021-02-01", "2021-09-30"), 1)
        .await;
    let twice = stack(&chart, 3).await;
    // Each batch is handled once, then twice more concurrently, before deletion.
    twice
        .run_chain(chain_event(&tickers, "2021-02-01", "2021-09-30"), 3)
        .await;

    let strip = |keys: Vec<String>| {
        keys.into_iter()
            .map(|k| k.strip_prefix("lake/").unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(twice.s3_keys().await), strip(once.s3_keys().await));
    let a = lake_rows(&once.validate.lake, &tickers).await;
    let b = lake_rows(&twice.validate.lake, &tickers).await;
    assert_same_values(&a, &b);
    let wa = once.warehouse.read_rows(None).await.unwrap();
    let wb = twice.warehouse.read_rows(None).await.unwrap();
    assert_eq!(wb.len(), a.len(), "no duplicate rows");
    assert_same_values(&wa, &wb);
    // Duplicates write the same rows, timestamps included: the lake equals its warehouse.
    let mut sorted = b.clone();
    sorted.sort_by(|x, y| (x.ticker.as_bytes(), x.date()).cmp(&(y.ticker.as_bytes(), y.date())));
    assert_eq!(wb, sorted);
    once.close().await;
    twice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_reach_the_dead_letter_queue_and_neighbours_succeed() {
    let chart = recorded_server().await;
    // AAPL's server always fails: a message that can never succeed.
    for _ in 0..(MAX_RECEIVE_COUNT as usize + 2) {
        chart.push_reply("AAPL", Reply::status(503, "down"));
    }
    let stack = stack(&chart, 0).await;
    let planned = stack
        .validate
        .handle(
            chain_event(&["MSFT", "AAPL"], "2021-03-01", "2021-03-31"),
            d("2021-03-31"),
        )
        .await
        .unwrap();
    assert_eq!(planned.sent, ["MSFT", "AAPL"]);
    // A malformed message and one of an unknown version, in the same queue.
    let bodies = vec![
        "{not json".to_string(),
        r#"{"v":2,"run_id":"r","ticker":"MSFT"}"#.to_string(),
    ];
    mdp_core::queue::Queue::send(stack.fetch.queue.as_ref(), &stack.queues.fetch, &bodies)
        .await
        .unwrap();

    // First delivery: MSFT succeeds, the two bad bodies are dead-lettered at
    // once (permanent), AAPL is reported failed (transient) and hidden.
    let (handled, mut failed) = stack.pump(Stage::Fetch, 1).await;
    assert_eq!((handled, failed.len()), (4, 1));
    assert_eq!(stack.queue_len(&stack.queues.fetch_dlq).await, 2);

    // Each time its delay passes it fails again, until the redrive policy
    // moves it to the dead-letter queue after maxReceiveCount receives.
    wait_out_retry_delay(&stack, &stack.queues.fetch, &failed).await;
    for receive_no in 2..=MAX_RECEIVE_COUNT {
        failed = stack.pump(Stage::Fetch, 1).await.1;
        assert_eq!(failed.len(), 1, "receive {receive_no}");
        make_visible(&stack, &stack.queues.fetch, &failed).await;
    }
    assert!(
        receive(&stack.sqs, &stack.queues.fetch)
            .await
            .records
            .is_empty(),
        "redriven, not delivered a sixth time"
    );
    assert_eq!(
        stack.queue_len(&stack.queues.fetch_dlq).await,
        3,
        "AAPL joined the two bad bodies"
    );
    assert_eq!(
        chart.request_count("AAPL"),
        MAX_RECEIVE_COUNT as usize,
        "one request per delivery"
    );

    // The neighbour went all the way through.
    stack.pump(Stage::Transform, 1).await;
    stack.pump(Stage::Load, 1).await;
    assert_eq!(
        stack
            .warehouse
            .read_rows(Some(&ticker("MSFT")))
            .await
            .unwrap()
            .len(),
        23
    );
    assert!(
        stack
            .warehouse
            .read_rows(Some(&ticker("AAPL")))
            .await
            .unwrap()
            .is_empty()
    );
    stack.close().await;
}

/// Checks a failed message stays hidden past the queue's own visibility
/// timeout (the function delayed its redelivery), then lets that delay pass
/// by making it visible again.
async fn wait_out_retry_delay(stack: &Stack, queue_url: &str, failed: &[String]) {
    tokio::time::sleep(Duration::from_millis(QUEUE_VISIBILITY_SECS * 1000 + 500)).await;
    assert!(
        receive(&stack.sqs, queue_url).await.records.is_empty(),
        "the retry is delayed, not immediate"
    );
    make_visible(stack, queue_url, failed).await;
}

async fn make_visible(stack: &Stack, queue_url: &str, receipt_handles: &[String]) {
    for handle in receipt_handles {
        stack
            .sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_fetch_is_retried_by_redelivery() {
    let chart = recorded_server().await;
    chart.push_reply("NVDA", Reply::too_many_requests("1"));
    // No in-process retries: the 429 must come back through the queue.
    let stack = stack(&chart, 0).await;
    stack
        .validate
        .handle(
            chain_event(&["NVDA"], "2021-03-01", "2021-03-31"),
            d("2021-03-31"),
        )
        .await
        .unwrap();
    let (handled, failed) = stack.pump(Stage::Fetch, 1).await;
    assert_eq!((handled, failed.len()), (1, 1));
    wait_out_retry_delay(&stack, &stack.queues.fetch, &failed).await;
    let (handled, failed) = stack.pump(Stage::Fetch, 1).await;
    assert_eq!((handled, failed.len()), (1, 0));
    assert_eq!(chart.request_count("NVDA"), 2);
    stack.pump(Stage::Transform, 1).await;
    stack.pump(Stage::Load, 1).await;
    assert_eq!(stack.warehouse.read_rows(None).await.unwrap().len(), 23);
    assert_eq!(stack.queue_len(&stack.queues.fetch_dlq).await, 0);
    stack.close().await;
}
