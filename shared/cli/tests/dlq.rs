//! `mdp dlq list|show|redrive` as a user runs them, against a local moto
//! server (AWS_ENDPOINT_URL) and a lake folder holding failure records.

use std::process::{Command, Output};
use std::sync::Arc;

use mdp_aws::{SqsQueue, sdk_config_for, sqs_client};
use mdp_core::lake::Failure;
use mdp_core::queue::{DeadLetter, Queue, StageName};
use mdp_core::{ErrorClass, Lake, LocalStore};
use mdp_devtools::MotoServer;

fn mdp(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdp"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn list_show_and_redrive_a_stage_dead_letter_queue() {
    let moto = MotoServer::start().expect("moto server (pip install 'moto[server]')");
    let client = sqs_client(&sdk_config_for(&moto.endpoint).await);
    let create = |name: &str| {
        let client = client.clone();
        let name = name.to_string();
        async move {
            client
                .create_queue()
                .queue_name(name)
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap()
        }
    };
    let source = create("fetch").await;
    let dlq = create("fetch-dlq").await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path().join("lake"))));

    // One dead-lettered by the function with its reason...
    let queue = SqsQueue::new(client.clone());
    let letter = DeadLetter::permanent(
        StageName::Fetch,
        r#"{"v":1,"run_id":"r","ticker":"NOPE","start":"2025-06-30","end":"2025-06-30","mode":"incremental"}"#,
        None,
        "chart API: HTTP 404: No data found, symbol may be delisted",
    );
    queue.dead_letter(&dlq, &letter).await.unwrap();
    // ...one as the redrive policy moves it, with a failure record by its id.
    let moved_body = r#"{"v":1,"run_id":"r","ticker":"MSFT","start":"2025-06-30","end":"2025-06-30","mode":"incremental"}"#;
    let moved_id = client
        .send_message()
        .queue_url(&dlq)
        .message_body(moved_body)
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap();
    lake.record_failure(Failure {
        stage: StageName::Fetch,
        message_id: &moved_id,
        body: Some(moved_body),
        error_class: ErrorClass::Transient,
        reason: "chart API: HTTP 503 after 4 attempts",
        receive_count: 5,
    })
    .await
    .unwrap();

    let env = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("FETCH_QUEUE_URL", source.clone()),
        ("FETCH_DLQ_URL", dlq.clone()),
        (
            "MARKET_DATA_LAKE_URI",
            format!("file://{}", dir.path().join("lake").display()),
        ),
    ];

    let list = mdp(&["dlq", "list", "--stage", "fetch"], &env);
    let out = text(&list.stdout);
    assert!(list.status.success(), "{out}\n{}", text(&list.stderr));
    assert!(out.contains("2 messages"), "{out}");
    let nope = out.lines().find(|l| l.contains("NOPE")).expect(&out);
    assert!(
        nope.contains("permanent") && nope.contains("HTTP 404"),
        "{nope}"
    );
    let msft = out.lines().find(|l| l.contains(&moved_id)).expect(&out);
    assert!(
        msft.contains("MSFT") && msft.contains("transient") && msft.contains("HTTP 503"),
        "{msft}"
    );
    // Listing consumed nothing.
    let again = mdp(&["dlq", "list", "--stage", "fetch"], &env);
    assert!(text(&again.stdout).contains("2 messages"));

    let show = mdp(&["dlq", "show", "--stage", "fetch", &moved_id], &env);
    let out = text(&show.stdout);
    assert!(show.status.success(), "{out}\n{}", text(&show.stderr));
    assert!(out.contains(moved_body), "{out}");
    assert!(out.contains("receive count  5"), "{out}");
    assert!(out.contains("state/failures/fetch/"), "{out}");
    let missing = mdp(&["dlq", "show", "--stage", "fetch", "no-such-id"], &env);
    assert_eq!(missing.status.code(), Some(1));

    let redrive = mdp(&["dlq", "redrive", "--stage", "fetch"], &env);
    let out = text(&redrive.stdout);
    assert!(redrive.status.success(), "{out}\n{}", text(&redrive.stderr));
    assert!(out.contains("moved 2 messages"), "{out}");
    assert!(out.contains("idempotent"), "{out}");
    let after = mdp(&["dlq", "list", "--stage", "fetch"], &env);
    assert!(
        text(&after.stdout).contains("0 messages"),
        "{}",
        text(&after.stdout)
    );

    // Without the stage's queue URLs: a configuration error naming the variable.
    let unset = mdp(&["dlq", "list", "--stage", "load"], &env);
    assert_eq!(unset.status.code(), Some(2));
    assert!(
        text(&unset.stderr).contains("LOAD_QUEUE_URL"),
        "{}",
        text(&unset.stderr)
    );
    let bad = mdp(&["dlq", "list", "--stage", "warehouse"], &env);
    assert_eq!(bad.status.code(), Some(2));
}
