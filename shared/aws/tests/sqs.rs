//! SqsQueue against a local moto server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::Message;
use mdp_aws::{MAX_MESSAGE_BYTES, SqsQueue, sdk_config_for, sqs_client};
use mdp_core::queue::Queue;
use mdp_devtools::MotoServer;

struct Env {
    _moto: Arc<MotoServer>,
    client: aws_sdk_sqs::Client,
    queue: SqsQueue,
    url: String,
}

/// The shared moto server and a fresh queue named `name`.
async fn env(name: &str) -> Env {
    let moto = MotoServer::shared().expect("moto server (pip install 'moto[server]')");
    let client = sqs_client(&sdk_config_for(&moto.endpoint).await);
    let url = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Env {
        _moto: moto,
        queue: SqsQueue::new(client.clone()),
        client,
        url,
    }
}

async fn receive(env: &Env, visibility: Option<i32>) -> Vec<Message> {
    env.client
        .receive_message()
        .queue_url(&env.url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .set_visibility_timeout(visibility)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

/// Receives until `n` messages came back or 10 s passed.
async fn receive_n(env: &Env, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut bodies = Vec::new();
    while bodies.len() < n && Instant::now() < deadline {
        for m in receive(env, None).await {
            bodies.push(m.body.unwrap());
        }
    }
    bodies
}

#[tokio::test]
async fn every_body_sent_in_batches_comes_back() {
    let env = env("send-23").await;
    let mut bodies: Vec<String> = (0..23)
        .map(|i| format!(r#"{{"v":1,"run_id":"r","ticker":"T{i}","note":"é ^ %5E"}}"#))
        .collect();
    env.queue.send(&env.url, &bodies).await.unwrap();
    let mut got = receive_n(&env, 23).await;
    got.sort();
    bodies.sort();
    assert_eq!(got, bodies);
    assert!(receive(&env, None).await.is_empty());
}

#[tokio::test]
async fn nothing_to_send_makes_no_call() {
    // The endpoint is closed: any request would fail.
    let cfg = sdk_config_for("http://127.0.0.1:9").await;
    let queue = SqsQueue::new(sqs_client(&cfg));
    queue
        .send("http://127.0.0.1:9/000000000000/q", &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn change_visibility_hides_and_shows_a_received_message() {
    let env = env("visibility").await;
    env.queue.send(&env.url, &["later".into()]).await.unwrap();
    // Received for one second only; the change must outlast that.
    let got = receive(&env, Some(1)).await;
    assert_eq!(got.len(), 1);
    let handle = got[0].receipt_handle.clone().unwrap();
    env.queue
        .change_visibility(&env.url, &handle, Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receive(&env, None).await.is_empty());
    // Zero makes it visible again at once.
    env.queue
        .change_visibility(&env.url, &handle, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(receive_n(&env, 1).await, ["later"]);
}

#[tokio::test]
async fn an_oversize_or_empty_body_is_permanent_and_nothing_is_sent() {
    let env = env("oversize").await;
    let bodies = vec!["small".to_string(), "x".repeat(MAX_MESSAGE_BYTES + 1)];
    let err = env.queue.send(&env.url, &bodies).await.unwrap_err();
    assert_eq!(err.class(), mdp_core::ErrorClass::Permanent, "{err}");
    assert!(
        mdp_core::error::chain(&err).contains("262145 bytes")
            && mdp_core::error::chain(&err).contains(&env.url),
        "{err}"
    );
    let err = env
        .queue
        .send(&env.url, &["a".into(), String::new()])
        .await
        .unwrap_err();
    assert_eq!(err.class(), mdp_core::ErrorClass::Permanent, "{err}");
    assert!(receive(&env, None).await.is_empty());
    // Exactly the limit is fine.
    env.queue
        .send(&env.url, &["y".repeat(MAX_MESSAGE_BYTES)])
        .await
        .unwrap();
    assert_eq!(receive_n(&env, 1).await.len(), 1);
}

#[tokio::test]
async fn a_missing_queue_is_a_permanent_error_naming_it() {
    let env = env("exists").await;
    let missing = env.url.replace("/exists", "/no-such-queue");
    let err = env.queue.send(&missing, &["x".into()]).await.unwrap_err();
    assert_eq!(err.class(), mdp_core::ErrorClass::Permanent, "{err}");
    assert!(mdp_core::error::chain(&err).contains(&missing), "{err}");
    let err = env
        .queue
        .change_visibility(&missing, "handle", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.class(), mdp_core::ErrorClass::Permanent, "{err}");
}
