//! S3Store against a local moto server.

use std::sync::Arc;
use std::time::Instant;

use mdp_aws::{S3Store, s3_client, sdk_config_for};
use mdp_core::{ObjectStore, StageError, StoreError};
use mdp_devtools::MotoServer;

struct Env {
    // Keeps the shared server alive for the test.
    _moto: Arc<MotoServer>,
    client: aws_sdk_s3::Client,
}

/// The shared moto server and a fresh bucket named `bucket`.
async fn env(bucket: &str) -> Env {
    let moto = MotoServer::shared().expect("moto server (pip install 'moto[server]')");
    let client = s3_client(&sdk_config_for(&moto.endpoint).await);
    client.create_bucket().bucket(bucket).send().await.unwrap();
    Env {
        _moto: moto,
        client,
    }
}

#[tokio::test]
async fn objects_round_trip_with_hive_keys_kept_byte_for_byte() {
    let env = env("round-trip").await;
    let store = S3Store::new(env.client.clone(), "round-trip", "lake");
    let keys = [
        "curated/market_data/ticker=%5EGSPC/year=2025/part-0.parquet",
        "raw/yahoo/chart/ticker=EURUSD%3DX/2025-01-02_2025-06-30.json",
        "state/ticker=%5EGSPC.json",
        "odd/a b+c~%25!'(),;@&$.json",
        "empty/object.bin",
    ];
    for (i, key) in keys.iter().enumerate() {
        let bytes = if key.starts_with("empty/") {
            Vec::new()
        } else {
            format!("object {i}").into_bytes()
        };
        store.put(key, bytes).await.unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        let expected = if key.starts_with("empty/") {
            Vec::new()
        } else {
            format!("object {i}").into_bytes()
        };
        assert_eq!(store.get(key).await.unwrap(), Some(expected), "{key}");
    }
    // Overwrite: readers get the whole new object.
    store.put(keys[0], vec![7; 3000]).await.unwrap();
    assert_eq!(store.get(keys[0]).await.unwrap(), Some(vec![7; 3000]));

    // No decoding anywhere: the decoded key is another object.
    assert_eq!(
        store
            .get("curated/market_data/ticker=^GSPC/year=2025/part-0.parquet")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get("curated/missing.parquet").await.unwrap(), None);

    let mut sorted = keys.map(str::to_string).to_vec();
    sorted.sort();
    assert_eq!(store.list("").await.unwrap(), sorted);
    assert_eq!(store.list("curated/market_data/").await.unwrap(), [keys[0]]);
    assert_eq!(store.list("state/ticker=%5E").await.unwrap(), [keys[2]]);

    // In the bucket the object key is the prefix plus the lake key, verbatim.
    let raw = env
        .client
        .list_objects_v2()
        .bucket("round-trip")
        .prefix("lake/curated/")
        .send()
        .await
        .unwrap();
    let raw_keys: Vec<&str> = raw.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        raw_keys,
        ["lake/curated/market_data/ticker=%5EGSPC/year=2025/part-0.parquet"]
    );
    assert_eq!(store.uri(), "s3://round-trip/lake");
}

#[tokio::test]
async fn list_follows_every_page() {
    let env = env("pages").await;
    let store = S3Store::new(env.client.clone(), "pages", "p").with_page_size(7);
    let mut keys: Vec<String> = (0..23)
        .map(|i| format!("raw/ticker=T{}/{i:03}.json", i % 4))
        .collect();
    for key in &keys {
        store.put(key, b"{}".to_vec()).await.unwrap();
    }
    keys.sort();
    assert_eq!(store.list("raw/").await.unwrap(), keys);
    assert_eq!(store.list("raw/ticker=T1/").await.unwrap().len(), 6);
}

#[tokio::test]
async fn list_follows_s3_default_pages_past_1000_keys() {
    let env = env("many").await;
    let store = Arc::new(S3Store::new(env.client.clone(), "many", ""));
    let started = Instant::now();
    let mut puts = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let store = store.clone();
        puts.spawn(async move {
            for i in (worker..1100).step_by(8) {
                store.put(&format!("k/{i:05}"), vec![1]).await.unwrap();
            }
        });
    }
    while let Some(done) = puts.join_next().await {
        done.unwrap();
    }
    let listed = store.list("k/").await.unwrap();
    let expected: Vec<String> = (0..1100).map(|i| format!("k/{i:05}")).collect();
    assert_eq!(listed, expected);
    eprintln!("1100 puts and a list took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_prefix_never_sees_a_sibling_with_a_longer_name() {
    let env = env("isolation").await;
    let a = S3Store::new(env.client.clone(), "isolation", "lake/a");
    let ab = S3Store::new(env.client.clone(), "isolation", "lake/ab/");
    let root = S3Store::new(env.client.clone(), "isolation", "");
    a.put("x/1.json", b"a".to_vec()).await.unwrap();
    ab.put("x/1.json", b"ab".to_vec()).await.unwrap();
    ab.put("x/2.json", b"ab".to_vec()).await.unwrap();

    assert_eq!(a.list("").await.unwrap(), ["x/1.json"]);
    assert_eq!(a.list("x").await.unwrap(), ["x/1.json"]);
    assert_eq!(ab.list("").await.unwrap(), ["x/1.json", "x/2.json"]);
    assert_eq!(a.get("x/1.json").await.unwrap().unwrap(), b"a");
    assert_eq!(a.get("x/2.json").await.unwrap(), None);
    assert_eq!(
        root.list("lake/").await.unwrap(),
        ["lake/a/x/1.json", "lake/ab/x/1.json", "lake/ab/x/2.json"]
    );
}

#[tokio::test]
async fn a_missing_bucket_is_an_error_naming_the_bucket() {
    let env = env("exists").await;
    let store = S3Store::new(env.client.clone(), "no-such-lake-bucket", "lake");
    let errors = [
        store.get("state/ticker=AAPL.json").await.unwrap_err(),
        store
            .put("state/ticker=AAPL.json", vec![1])
            .await
            .unwrap_err(),
        store.list("state/").await.unwrap_err(),
    ];
    for err in errors {
        let line = err.to_string();
        assert!(matches!(err, StoreError::Refused { .. }), "{line}");
        assert!(
            line.contains("\"no-such-lake-bucket\"") && line.contains("does not exist"),
            "{line}"
        );
        assert!(line.contains("NoSuchBucket"), "{line}");
        // Retrying cannot create the bucket: dead-letter, do not retry.
        assert!(!StageError::from(err).is_transient());
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_backend_error() {
    // A port nothing listens on: the SDK's connection error, after its retries.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = sdk_config_for(&format!("http://127.0.0.1:{port}")).await;
    let store = S3Store::new(s3_client(&cfg), "b", "");
    let err = store.get("a.json").await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err}");
    assert!(err.to_string().contains("s3://b/a.json"), "{err}");
    assert!(
        StageError::from(err).is_transient(),
        "a connection failure is retried"
    );
}
