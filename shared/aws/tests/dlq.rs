//! Dead letters that explain themselves, against a local moto server: the
//! attributes SqsQueue sends with a dead letter, and `mdp dlq`'s list, show
//! and redrive (mdp_aws::dlq) on a FIFO and a standard queue pair, with the
//! failure records of a local lake.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use mdp_aws::dlq::{self, Explained, StageQueues};
use mdp_aws::{SqsQueue, sdk_config_for, sqs_client};
use mdp_core::lake::Failure;
use mdp_core::queue::{
    ATTR_ERROR_CLASS, ATTR_FIRST_FAILURE, ATTR_REASON, ATTR_STAGE, DeadLetter, ELLIPSIS,
    GroupedMessage, MAX_REASON_BYTES, Queue, StageName, format_time, parse_time,
};
use mdp_core::{ErrorClass, Lake, LocalStore};
use mdp_devtools::MotoServer;

/// A queue and its dead-letter queue on the shared moto server, and a lake
/// in a fresh folder (removed on drop).
struct Pair {
    _moto: Arc<MotoServer>,
    client: aws_sdk_sqs::Client,
    sqs: SqsQueue,
    queues: StageQueues,
    lake: Lake,
    dir: PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `<name>` and `<name>-dlq` (`.fifo` with content-based deduplication when
/// `fifo`), the first dead-lettering to the second after `max_receives`.
async fn pair(name: &str, fifo: bool, stage: StageName, max_receives: u32) -> Pair {
    let moto = MotoServer::shared().expect("moto server (pip install 'moto[server]')");
    let client = sqs_client(&sdk_config_for(&moto.endpoint).await);
    let suffix = if fifo { ".fifo" } else { "" };
    let create = |queue_name: String, redrive: Option<String>| {
        let client = client.clone();
        async move {
            let mut request = client.create_queue().queue_name(queue_name);
            if fifo {
                request = request
                    .attributes(QueueAttributeName::FifoQueue, "true")
                    .attributes(QueueAttributeName::ContentBasedDeduplication, "true");
            }
            if let Some(policy) = redrive {
                request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
            }
            request.send().await.unwrap().queue_url.unwrap()
        }
    };
    let dlq_url = create(format!("{name}-dlq{suffix}"), None).await;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let policy =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":{max_receives}}}"#);
    let source_url = create(format!("{name}{suffix}"), Some(policy)).await;
    let dir = std::env::temp_dir().join(format!(
        "mdp-dlq-test-{}-{name}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    let lake = Lake::new(Arc::new(LocalStore::new(&dir)));
    Pair {
        _moto: moto,
        sqs: SqsQueue::new(client.clone()),
        client,
        queues: StageQueues {
            stage,
            source_url,
            dlq_url,
        },
        lake,
        dir,
    }
}

fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn body(ticker: &str, n: u32) -> String {
    format!(r#"{{"v":1,"run_id":"20250630T220000Z-1","ticker":"{ticker}","n":{n}}}"#)
}

/// One receive of up to ten messages with all attributes (consuming: the
/// messages stay hidden for 30 s).
async fn receive(client: &aws_sdk_sqs::Client, url: &str) -> Vec<Message> {
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .visibility_timeout(30)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

/// Receives until `n` messages came back or 10 s passed.
async fn receive_n(client: &aws_sdk_sqs::Client, url: &str, n: usize) -> Vec<Message> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(receive(client, url).await);
    }
    got
}

/// Receives and deletes until `n` messages came back or 10 s passed (a
/// FIFO group's next messages are handed out once the earlier are deleted).
async fn drain_n(client: &aws_sdk_sqs::Client, url: &str, n: usize) -> Vec<Message> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        for m in receive(client, url).await {
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            got.push(m);
        }
    }
    got
}

fn string_attribute<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.message_attributes()?.get(name)?.string_value()
}

fn group_of(m: &Message) -> Option<&str> {
    m.attributes()?
        .get(&MessageSystemAttributeName::MessageGroupId)
        .map(String::as_str)
}

/// A letter of `stage` with a fixed first failure.
fn letter(stage: StageName, body: String, group: Option<&str>, reason: &str) -> DeadLetter {
    DeadLetter {
        first_failure: parse_time("2025-06-30T22:01:02.345Z").unwrap(),
        ..DeadLetter::permanent(stage, body, group.map(str::to_string), reason)
    }
}

/// Fails a message of the source queue transiently until the redrive policy
/// moves it to the dead-letter queue (maxReceiveCount 1 here), recording
/// each failure in the lake as the batch handler does. Returns its id.
async fn dead_letter_by_redrive_policy(p: &Pair, group: &str, body: String) -> String {
    p.sqs
        .send_grouped(&p.queues.source_url, &[GroupedMessage::new(group, body)])
        .await
        .unwrap();
    let got = receive_n(&p.client, &p.queues.source_url, 1).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    let id = m.message_id().unwrap().to_string();
    p.lake
        .record_failure(Failure {
            stage: p.queues.stage,
            message_id: &id,
            body: m.body(),
            error_class: ErrorClass::Transient,
            reason: "reading partition: lake backend error: SlowDown (HTTP 503)",
            receive_count: 1,
        })
        .await
        .unwrap();
    p.sqs
        .change_visibility(
            &p.queues.source_url,
            m.receipt_handle().unwrap(),
            Duration::ZERO,
        )
        .await
        .unwrap();
    // The next receive finds it over maxReceiveCount: moto moves it.
    assert!(receive(&p.client, &p.queues.source_url).await.is_empty());
    id
}

#[tokio::test]
async fn a_dead_letter_carries_its_reason_in_attributes_on_fifo_and_standard_queues() {
    for fifo in [true, false] {
        let p = pair(&format!("attrs-{fifo}"), fifo, StageName::Transform, 5).await;
        let long_reason = format!("malformed message: {}", "é€𝄞".repeat(2 * MAX_REASON_BYTES));
        let letters = [
            letter(
                StageName::Transform,
                body("MSFT", 1),
                Some("MSFT"),
                "malformed message: missing field `raw_key`",
            ),
            letter(
                StageName::Transform,
                body("^GSPC", 2),
                Some("^GSPC"),
                &long_reason,
            ),
        ];
        for l in &letters {
            p.sqs.dead_letter(&p.queues.dlq_url, l).await.unwrap();
        }
        let mut got = receive_n(&p.client, &p.queues.dlq_url, 2).await;
        got.sort_by_key(|m| m.body().unwrap().to_string());
        assert_eq!(got.len(), 2, "fifo {fifo}");
        let (msft, gspc) = (&got[0], &got[1]);
        assert_eq!(msft.body(), Some(letters[0].body.as_str()));
        assert_eq!(string_attribute(msft, ATTR_STAGE), Some("transform"));
        assert_eq!(string_attribute(msft, ATTR_ERROR_CLASS), Some("permanent"));
        assert_eq!(
            string_attribute(msft, ATTR_REASON),
            Some("malformed message: missing field `raw_key`")
        );
        assert_eq!(
            string_attribute(msft, ATTR_FIRST_FAILURE),
            Some("2025-06-30T22:01:02.345Z")
        );
        // The long reason arrives cut, whole characters, with the ellipsis.
        let reason = string_attribute(gspc, ATTR_REASON).unwrap();
        assert!(reason.len() <= MAX_REASON_BYTES, "{}", reason.len());
        assert!(reason.ends_with(ELLIPSIS));
        assert!(long_reason.starts_with(reason.strip_suffix(ELLIPSIS).unwrap()));
        if fifo {
            assert_eq!(group_of(msft), Some("MSFT"));
            assert_eq!(group_of(gspc), Some("^GSPC"));
        } else {
            assert_eq!(group_of(msft), None);
        }
    }
}

#[tokio::test]
async fn the_same_body_dead_lettered_again_later_is_not_deduplicated_away() {
    let p = pair("again", true, StageName::Load, 5).await;
    let first = letter(StageName::Load, body("AAPL", 1), Some("AAPL"), "no table");
    p.sqs.dead_letter(&p.queues.dlq_url, &first).await.unwrap();
    // An SDK retry of the same letter is queued once...
    p.sqs.dead_letter(&p.queues.dlq_url, &first).await.unwrap();
    // ...the same body failing again (after a redrive) is a new letter.
    let again = DeadLetter {
        first_failure: parse_time("2025-06-30T22:03:00Z").unwrap(),
        ..first.clone()
    };
    p.sqs.dead_letter(&p.queues.dlq_url, &again).await.unwrap();
    let listing = dlq::list(&p.client, None, &p.queues).await.unwrap();
    let firsts: Vec<String> = listing
        .entries
        .iter()
        .map(|e| format_time(e.first_failure().unwrap()))
        .collect();
    assert_eq!(
        firsts,
        ["2025-06-30T22:01:02.345Z", "2025-06-30T22:03:00.000Z"]
    );
}

#[tokio::test]
async fn list_shows_every_dead_letter_without_consuming_it() {
    for fifo in [true, false] {
        let p = pair(&format!("list-{fifo}"), fifo, StageName::Fetch, 1).await;
        // Two dead-lettered by the function (attributes), in two groups...
        for (ticker, n) in [("MSFT", 1), ("AAPL", 2)] {
            let l = letter(
                StageName::Fetch,
                body(ticker, n),
                Some(ticker),
                "HTTP 404: no such symbol",
            );
            p.sqs.dead_letter(&p.queues.dlq_url, &l).await.unwrap();
        }
        // ...and one moved by the redrive policy (failure record in the lake).
        let moved_id = dead_letter_by_redrive_policy(&p, "NVDA", body("NVDA", 3)).await;

        let first = dlq::list(&p.client, Some(&p.lake), &p.queues)
            .await
            .unwrap();
        let second = dlq::list(&p.client, Some(&p.lake), &p.queues)
            .await
            .unwrap();
        assert_eq!(first.entries.len(), 3, "fifo {fifo}: {first:?}");
        assert_eq!(first.unseen, 0);
        let ids = |l: &dlq::Listing| {
            let mut ids: Vec<String> = l
                .entries
                .iter()
                .map(|e| e.message.message_id.clone())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&first), ids(&second), "listing twice gives the same");

        let mut by_ticker: Vec<(String, Explained, String, String, String)> = second
            .entries
            .iter()
            .map(|e| {
                (
                    e.ticker().unwrap(),
                    e.explained(),
                    e.error_class().unwrap().to_string(),
                    e.reason().unwrap().to_string(),
                    e.stage().unwrap().to_string(),
                )
            })
            .collect();
        by_ticker.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(by_ticker[0].0, "AAPL");
        assert_eq!(by_ticker[0].1, Explained::Attributes);
        assert_eq!(by_ticker[0].2, "permanent");
        assert_eq!(by_ticker[0].3, "HTTP 404: no such symbol");
        assert_eq!(by_ticker[2].0, "NVDA");
        assert_eq!(by_ticker[2].1, Explained::FailureRecord);
        assert_eq!(by_ticker[2].2, "transient");
        assert!(by_ticker[2].3.contains("SlowDown"), "{:?}", by_ticker[2]);
        assert!(by_ticker.iter().all(|t| t.4 == "fetch"));
        let nvda = second
            .entries
            .iter()
            .find(|e| e.message.message_id == moved_id)
            .unwrap();
        assert!(nvda.first_failure().is_some());
        assert_eq!(nvda.record.as_ref().unwrap().receive_count, 1);

        // Nothing was consumed: all three are still there to receive.
        assert_eq!(receive_n(&p.client, &p.queues.dlq_url, 3).await.len(), 3);
    }
}

#[tokio::test]
async fn show_gives_the_body_the_attributes_and_the_failure_record() {
    let p = pair("show", true, StageName::Transform, 1).await;
    let l = letter(
        StageName::Transform,
        body("MSFT", 1),
        Some("MSFT"),
        "raw object is not a chart response",
    );
    p.sqs.dead_letter(&p.queues.dlq_url, &l).await.unwrap();
    let moved_id = dead_letter_by_redrive_policy(&p, "^GSPC", body("^GSPC", 2)).await;

    let entry = dlq::show(&p.client, Some(&p.lake), &p.queues, &moved_id)
        .await
        .unwrap()
        .expect("the message is found by the id it had in the source queue");
    assert_eq!(entry.message.body, body("^GSPC", 2));
    assert_eq!(entry.message.group_id(), Some("^GSPC"));
    assert!(
        entry
            .message
            .system_attributes
            .contains_key("SentTimestamp")
    );
    let record = entry.record.as_ref().unwrap();
    assert_eq!(record.message_id, moved_id);
    assert_eq!(record.stage, StageName::Transform);
    assert_eq!(record.ticker.as_deref(), Some("^GSPC"));
    assert_eq!(record.error_class, ErrorClass::Transient);

    let listing = dlq::list(&p.client, None, &p.queues).await.unwrap();
    let own_id = listing
        .entries
        .iter()
        .find(|e| e.explained() == Explained::Attributes)
        .unwrap()
        .message
        .message_id
        .clone();
    let entry = dlq::show(&p.client, Some(&p.lake), &p.queues, &own_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        entry.message.attributes[ATTR_REASON],
        "raw object is not a chart response"
    );
    assert_eq!(entry.message.attributes[ATTR_STAGE], "transform");
    assert_eq!(entry.record, None);
    assert_eq!(
        dlq::show(&p.client, Some(&p.lake), &p.queues, "no-such-id")
            .await
            .unwrap(),
        None
    );
    // Showing consumed nothing.
    assert_eq!(
        dlq::list(&p.client, None, &p.queues)
            .await
            .unwrap()
            .entries
            .len(),
        2
    );
}

#[tokio::test]
async fn redrive_moves_every_message_back_and_the_dead_letter_queue_is_empty() {
    for fifo in [true, false] {
        let p = pair(&format!("redrive-{fifo}"), fifo, StageName::Load, 1).await;
        let mut sent = Vec::new();
        // Twelve letters over two groups (more than one receive's worth).
        for n in 0..12 {
            let ticker = if n % 2 == 0 { "MSFT" } else { "AAPL" };
            let b = body(ticker, n);
            let l = letter(
                StageName::Load,
                b.clone(),
                Some(ticker),
                "warehouse refused the row",
            );
            p.sqs.dead_letter(&p.queues.dlq_url, &l).await.unwrap();
            sent.push((ticker.to_string(), b));
        }
        let moved_id = dead_letter_by_redrive_policy(&p, "NVDA", body("NVDA", 99)).await;
        sent.push(("NVDA".into(), body("NVDA", 99)));
        assert!(
            p.lake
                .read_failure(StageName::Load, &moved_id)
                .await
                .unwrap()
                .is_some()
        );

        let report = dlq::redrive(&p.client, Some(&p.lake), &p.queues)
            .await
            .unwrap();
        assert_eq!(report.moved, 13, "fifo {fifo}: {report:?}");
        assert_eq!(report.left_new, 0);
        assert!(report.not_deleted.is_empty() && report.stopped.is_none());
        assert_eq!(report.approximate_left, 0);
        assert!(receive(&p.client, &p.queues.dlq_url).await.is_empty());
        // The redriven copy is a new message: its old record is gone.
        assert!(
            p.lake
                .read_failure(StageName::Load, &moved_id)
                .await
                .unwrap()
                .is_none()
        );

        // The stage sending one of the bodies again right after (a new
        // hand-over of the same content) is not taken for a duplicate of the
        // redriven copy: the redrive gave each copy a deduplication id of its
        // own instead of the content-based one. (moto deduplicates against
        // the messages still queued only, so it is sent before they are read.)
        p.sqs
            .send_grouped(
                &p.queues.source_url,
                &[GroupedMessage::new("MSFT", body("MSFT", 0))],
            )
            .await
            .unwrap();
        let got = drain_n(&p.client, &p.queues.source_url, 14).await;
        assert_eq!(got.len(), 14, "fifo {fifo}: 13 redriven and the new copy");
        sent.push(("MSFT".into(), body("MSFT", 0)));
        let mut back: Vec<(Option<String>, String)> = got
            .iter()
            .map(|m| {
                (
                    group_of(m).map(str::to_string),
                    m.body().unwrap().to_string(),
                )
            })
            .collect();
        back.sort_by(|a, b| a.1.cmp(&b.1));
        let mut expected: Vec<(Option<String>, String)> = sent
            .iter()
            .map(|(t, b)| (fifo.then(|| t.clone()), b.clone()))
            .collect();
        expected.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(back, expected, "fifo {fifo}: every message, in its group");
        if fifo {
            // A group's messages come back in the order they were
            // dead-lettered, then the stage's new copy.
            let msft: Vec<&str> = got
                .iter()
                .filter(|m| group_of(m) == Some("MSFT"))
                .map(|m| m.body().unwrap())
                .collect();
            let mut expected: Vec<String> = (0..12).step_by(2).map(|n| body("MSFT", n)).collect();
            expected.push(body("MSFT", 0));
            assert_eq!(msft, expected);
        }

        // Nothing left: a second redrive moves nothing.
        let report = dlq::redrive(&p.client, Some(&p.lake), &p.queues)
            .await
            .unwrap();
        assert_eq!(report.moved, 0);
    }
}

#[tokio::test]
async fn queue_urls_come_from_the_configuration() {
    let config = mdp_core::Config::from_lookup(|name| match name {
        "TRANSFORM_QUEUE_URL" => Some("http://sqs/1/t.fifo".into()),
        "TRANSFORM_DLQ_URL" => Some("http://sqs/1/t-dlq.fifo".into()),
        "FETCH_QUEUE_URL" => Some("http://sqs/1/f".into()),
        _ => None,
    })
    .unwrap();
    let t = StageQueues::from_config(&config, StageName::Transform).unwrap();
    assert_eq!(t.source_url, "http://sqs/1/t.fifo");
    assert_eq!(t.dlq_url, "http://sqs/1/t-dlq.fifo");
    assert!(t.is_fifo());
    let err = StageQueues::from_config(&config, StageName::Fetch).unwrap_err();
    assert!(err.to_string().contains("FETCH_DLQ_URL"), "{err}");
    let err = StageQueues::from_config(&config, StageName::Validate).unwrap_err();
    assert!(err.to_string().contains("no queue"), "{err}");
}
