//! Configuration from the environment (DESIGN.md section 7) through its
//! public API, [`Config::from_lookup`]: the defaults, parsed values, one-line
//! errors naming the variable, the Redshift `COPY` role, and the warehouse
//! password kept out of errors. Moved out of `src/config.rs` to keep that
//! file short; the connection itself is tested in `connection_*.rs`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use mdp_core::Ticker;
use mdp_core::config::{
    Config, ConfigError, DEFAULT_API_BASE_URL, DEFAULT_WAREHOUSE_URL, LakeUri, LoadStrategy,
    ParquetCompression, WarehouseKind, redact_url,
};

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_match_the_design() {
    let c = config(&[]).unwrap();
    assert_eq!(c.default_tickers, [Ticker::parse("AAPL").unwrap()]);
    assert_eq!(c.api_base_url, DEFAULT_API_BASE_URL);
    assert_eq!(c.api_timeout, Duration::from_secs(30));
    assert_eq!(c.max_retries, 3);
    assert_eq!(c.retry_delay, Duration::from_secs(5));
    assert_eq!(c.backfill_days, 120);
    assert_eq!(c.lake_uri, LakeUri::File(PathBuf::from("./data")));
    assert_eq!(c.parquet_compression, ParquetCompression::Snappy);
    assert_eq!(c.warehouse_url, DEFAULT_WAREHOUSE_URL);
    assert_eq!(c.warehouse_kind, WarehouseKind::Sqlite);
    assert_eq!(
        (c.warehouse_schema.as_str(), c.warehouse_table.as_str()),
        ("public", "fact_market_data")
    );
    assert_eq!(c.load_strategy, LoadStrategy::Upsert);
    assert_eq!(c.batch_size, 1000);
    assert_eq!(c.aws_endpoint_url, None);
}

#[test]
fn values_are_parsed() {
    let c = config(&[
        ("MARKET_DATA_DEFAULT_TICKERS", r#"["msft", "^gspc"]"#),
        ("MARKET_DATA_RETRY_DELAY", "0.25"),
        ("MARKET_DATA_LAKE_URI", "s3://bucket/some/prefix/"),
        ("PARQUET_COMPRESSION", "ZSTD"),
        ("WAREHOUSE_URL", "postgres://u:secret@db:5432/x"),
        ("WAREHOUSE_LOAD_STRATEGY", "truncate_insert"),
        ("WAREHOUSE_BATCH_SIZE", "50"),
    ])
    .unwrap();
    let names: Vec<&str> = c.default_tickers.iter().map(Ticker::as_str).collect();
    assert_eq!(names, ["MSFT", "^GSPC"]);
    assert_eq!(c.retry_delay, Duration::from_millis(250));
    assert_eq!(
        c.lake_uri,
        LakeUri::S3 {
            bucket: "bucket".into(),
            prefix: "some/prefix".into()
        }
    );
    assert_eq!(c.parquet_compression, ParquetCompression::Zstd);
    assert_eq!(c.warehouse_kind, WarehouseKind::Postgres);
    assert_eq!(c.load_strategy, LoadStrategy::TruncateInsert);
    assert_eq!(c.batch_size, 50);
    let csv = config(&[("MARKET_DATA_DEFAULT_TICKERS", "aapl, msft,AAPL")]).unwrap();
    assert_eq!(csv.default_tickers.len(), 2);
}

#[test]
fn bad_values_name_the_variable_and_what_is_accepted() {
    let cases = [
        (
            "MARKET_DATA_DEFAULT_TICKERS",
            "AAPL,NOT VALID",
            "invalid ticker",
        ),
        ("MARKET_DATA_API_TIMEOUT", "soon", "number of seconds"),
        ("MARKET_DATA_API_TIMEOUT", "0", "more than zero"),
        ("MARKET_DATA_MAX_RETRIES", "-1", "whole number from 0 to 20"),
        ("MARKET_DATA_RETRY_DELAY", "NaN", "number of seconds"),
        ("MARKET_DATA_BACKFILL_DAYS", "0", "whole number from 1"),
        ("MARKET_DATA_LAKE_URI", "/tmp/lake", "file://PATH or s3://"),
        ("PARQUET_COMPRESSION", "lz4", "snappy, zstd, gzip, none"),
        ("WAREHOUSE_URL", "mysql://x", "sqlite://PATH"),
        ("WAREHOUSE_SCHEMA", "public; drop table x", "SQL identifier"),
        ("WAREHOUSE_TABLE_MARKET_DATA", "1table", "SQL identifier"),
        (
            "WAREHOUSE_LOAD_STRATEGY",
            "merge",
            "upsert, append, truncate_insert",
        ),
        ("WAREHOUSE_BATCH_SIZE", "0", "whole number from 1"),
        ("WAREHOUSE_POOL_SIZE", "0", "whole number from 1 to 100"),
        ("YAHOO_FINANCE_API_BASE_URL", "ftp://x", "http"),
        ("AWS_ENDPOINT_URL", "localhost:5000", "http"),
    ];
    for (var, value, needle) in cases {
        let err = config(&[(var, value)]).unwrap_err();
        assert_eq!(err.variable, var);
        let line = err.to_string();
        assert!(line.contains(var) && line.contains(needle), "{line}");
        assert!(!line.contains('\n'));
    }
}

#[test]
fn redshift_needs_an_iam_role_for_copy() {
    let err = config(&[("WAREHOUSE_URL", "redshift://u:hunter2@cluster:5439/dev")]).unwrap_err();
    assert_eq!(err.variable, "WAREHOUSE_REDSHIFT_IAM_ROLE");
    let line = err.to_string();
    assert!(
        line.contains("WAREHOUSE_REDSHIFT_IAM_ROLE")
            && line.contains("required for a redshift warehouse"),
        "{line}"
    );
    assert!(!line.contains("hunter2") && !line.contains('\n'), "{line}");

    let role = "arn:aws:iam::123456789012:role/mdp-copy";
    let c = config(&[
        ("WAREHOUSE_URL", "redshift://u:p@cluster:5439/dev"),
        ("WAREHOUSE_REDSHIFT_IAM_ROLE", role),
    ])
    .unwrap();
    assert_eq!(c.warehouse_kind, WarehouseKind::Redshift);
    assert_eq!(c.warehouse_redshift_iam_role.as_deref(), Some(role));
    let chain = "arn:aws:iam::1:role/a,arn:aws-cn:iam::2:role/b";
    for ok in ["default", "DEFAULT", chain] {
        let c = config(&[("WAREHOUSE_REDSHIFT_IAM_ROLE", ok)]).unwrap();
        assert_eq!(c.warehouse_redshift_iam_role.as_deref(), Some(ok));
    }
    // Not needed (and unset by default) for other warehouses.
    assert_eq!(config(&[]).unwrap().warehouse_redshift_iam_role, None);
    for bad in [
        "mdp-copy",
        "arn:aws:iam::1:role/x'; drop",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::1:role/a b",
    ] {
        let err = config(&[("WAREHOUSE_REDSHIFT_IAM_ROLE", bad)]).unwrap_err();
        assert_eq!(err.variable, "WAREHOUSE_REDSHIFT_IAM_ROLE", "{bad}");
        assert!(err.to_string().contains("IAM role ARN"), "{err}");
    }
}

#[test]
fn a_secret_switching_to_redshift_needs_the_iam_role_too() {
    let c = config(&[("WAREHOUSE_URL", "postgres://u@db/x")]).unwrap();
    let err = c
        .with_warehouse_url("redshift://u:hunter2@cluster:5439/dev".into())
        .unwrap_err();
    assert_eq!(err.variable, "WAREHOUSE_REDSHIFT_IAM_ROLE");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let c = config(&[("WAREHOUSE_REDSHIFT_IAM_ROLE", "default")]).unwrap();
    let rs = c
        .with_warehouse_url("redshift://u:p@cluster:5439/dev".into())
        .unwrap();
    assert_eq!(rs.warehouse_kind, WarehouseKind::Redshift);
}

#[test]
fn warehouse_password_is_not_repeated_in_errors() {
    let err = config(&[("WAREHOUSE_URL", "mysql://user:hunter2@host/db")]).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert_eq!(
        redact_url("postgres://u:pw@h:5432/d?sslmode=require"),
        "postgres://u:***@h:5432/d?sslmode=require"
    );
    assert_eq!(
        redact_url("postgres://h/d?user=u&password=pw"),
        "postgres://h/d?user=u&password=***"
    );
    assert_eq!(redact_url("sqlite://./data/w.db"), "sqlite://./data/w.db");
}

#[test]
fn response_cap_and_request_budget_default_and_parse() {
    let c = config(&[]).unwrap();
    assert_eq!(c.max_response_bytes, 33_554_432);
    assert_eq!(c.api_concurrency, 5);
    assert_eq!(c.api_rate, None);

    let c = config(&[
        ("MARKET_DATA_MAX_RESPONSE_BYTES", "1024"),
        ("MARKET_DATA_API_CONCURRENCY", "100"),
        ("MARKET_DATA_API_RATE", "0.5"),
    ])
    .unwrap();
    assert_eq!(c.max_response_bytes, 1024);
    assert_eq!(c.api_concurrency, 100);
    assert_eq!(c.api_rate, Some(0.5));
    let c = config(&[
        ("MARKET_DATA_API_CONCURRENCY", "1"),
        ("MARKET_DATA_API_RATE", "20"),
    ])
    .unwrap();
    assert_eq!((c.api_concurrency, c.api_rate), (1, Some(20.0)));
    // Empty counts as unset, like every variable.
    assert_eq!(
        config(&[("MARKET_DATA_API_RATE", " ")]).unwrap().api_rate,
        None
    );
    let debug = format!("{c:?}");
    assert!(
        debug.contains("max_response_bytes") && debug.contains("api_rate"),
        "{debug}"
    );
}

#[test]
fn bad_response_cap_and_request_budget_name_the_variable() {
    let cases = [
        (
            "MARKET_DATA_MAX_RESPONSE_BYTES",
            "1023",
            "whole number from 1024",
        ),
        (
            "MARKET_DATA_MAX_RESPONSE_BYTES",
            "32MiB",
            "whole number from 1024",
        ),
        (
            "MARKET_DATA_MAX_RESPONSE_BYTES",
            "-1",
            "whole number from 1024",
        ),
        (
            "MARKET_DATA_MAX_RESPONSE_BYTES",
            "1e9",
            "whole number from 1024",
        ),
        (
            "MARKET_DATA_MAX_RESPONSE_BYTES",
            "99999999999999999999999",
            "whole number from 1024",
        ),
        (
            "MARKET_DATA_API_CONCURRENCY",
            "0",
            "whole number from 1 to 100",
        ),
        (
            "MARKET_DATA_API_CONCURRENCY",
            "101",
            "whole number from 1 to 100",
        ),
        (
            "MARKET_DATA_API_CONCURRENCY",
            "2.5",
            "whole number from 1 to 100",
        ),
        ("MARKET_DATA_API_RATE", "0", "more than zero"),
        ("MARKET_DATA_API_RATE", "-3", "more than zero"),
        ("MARKET_DATA_API_RATE", "NaN", "requests per second"),
        ("MARKET_DATA_API_RATE", "inf", "requests per second"),
        ("MARKET_DATA_API_RATE", "1e400", "requests per second"),
        ("MARKET_DATA_API_RATE", "5/s", "requests per second"),
        ("MARKET_DATA_API_RATE", "1e-300", "at least"),
    ];
    for (var, value, needle) in cases {
        let err = config(&[(var, value)]).unwrap_err();
        assert_eq!(err.variable, var, "{value}");
        let line = err.to_string();
        assert!(line.contains(var) && line.contains(needle), "{line}");
        assert!(!line.contains('\n'));
    }
}
