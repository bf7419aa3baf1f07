//! `load_sdk_config` honours AWS_ENDPOINT_URL (DESIGN.md section 7). The
//! only test of this binary, so setting the environment races nothing.

use mdp_aws::{S3Store, load_sdk_config, s3_client, sqs_client};
use mdp_core::ObjectStore;
use mdp_devtools::MotoServer;

#[tokio::test]
async fn the_environment_endpoint_is_used_with_path_style_s3() {
    let moto = MotoServer::start().expect("moto server (pip install 'moto[server]')");
    let missing = std::env::temp_dir().join("mdp-aws-test-no-such-aws-config");
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &moto.endpoint);
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_CONFIG_FILE", &missing);
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &missing);
        for name in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT_URL_SQS",
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        ] {
            std::env::remove_var(name);
        }
    }
    let cfg = load_sdk_config().await;
    assert_eq!(cfg.endpoint_url(), Some(moto.endpoint.as_str()));
    // No region configured: the local default.
    assert_eq!(cfg.region().map(|r| r.as_ref()), Some("us-east-1"));

    let s3 = s3_client(&cfg);
    // A dotted bucket name cannot be a virtual-hosted 127.0.0.1 subdomain:
    // this works only with path-style addressing.
    s3.create_bucket().bucket("env.lake").send().await.unwrap();
    let store = S3Store::new(s3, "env.lake", "");
    store
        .put("state/ticker=A.json", b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.get("state/ticker=A.json").await.unwrap().unwrap(),
        b"{}"
    );

    let sqs = sqs_client(&cfg);
    let url = sqs
        .create_queue()
        .queue_name("env")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert!(
        url.starts_with(&moto.endpoint) || url.contains("000000000000"),
        "{url}"
    );
}
