//! The exact statements of every strategy, and the connection options and
//! startup parameters sqlx really sends.

use std::collections::BTreeMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use mdp_core::connection::{ConnectionError, WarehouseConnection};
use sqlx::postgres::PgSslMode;

use super::statements::*;
use super::*;

/// The options a `redshift://` URL gives (PGSSLMODE ignored, so the test
/// does not depend on the environment).
fn options_of(url: &str) -> Result<PgConnectOptions, ConnectionError> {
    match WarehouseConnection::parse(url, |_| None)? {
        WarehouseConnection::Server(target) => Ok(connect_options(&target)),
        WarehouseConnection::Sqlite(_) => panic!("{url} is not a server"),
    }
}

const ROLE: &str = "arn:aws:iam::123456789012:role/mdp-copy";
const COLS: &str = "\"ticker\", \"date\", \"open\", \"high\", \"low\", \"close\", \"adj_close\", \"volume\", \
    \"sma_7\", \"sma_14\", \"sma_20\", \"ema_12\", \"macd\", \"macd_signal\", \"macd_histogram\", \"rsi\", \
    \"bb_upper\", \"bb_middle\", \"bb_lower\", \"volatility_20d\", \"daily_return\", \"daily_return_pct\", \
    \"currency\", \"exchange\", \"instrument_type\", \"regular_market_price\", \
    \"fifty_two_week_high\", \"fifty_two_week_low\", \"long_name\", \"short_name\", \
    \"created_at\", \"updated_at\"";

/// The curated files' columns: all but the ticker (in the path).
const FILE_COLS: &str = "\"date\", \"open\", \"high\", \"low\", \"close\", \"adj_close\", \"volume\", \
    \"sma_7\", \"sma_14\", \"sma_20\", \"ema_12\", \"macd\", \"macd_signal\", \"macd_histogram\", \"rsi\", \
    \"bb_upper\", \"bb_middle\", \"bb_lower\", \"volatility_20d\", \"daily_return\", \"daily_return_pct\", \
    \"currency\", \"exchange\", \"instrument_type\", \"regular_market_price\", \
    \"fifty_two_week_high\", \"fifty_two_week_low\", \"long_name\", \"short_name\", \
    \"created_at\", \"updated_at\"";

/// The staging table of a load of AAPL, written out by hand.
const STAGE_DEFINITIONS: &str = "\"ticker\" VARCHAR(16) NOT NULL DEFAULT 'AAPL', \
    \"date\" DATE NOT NULL, \"open\" DOUBLE PRECISION, \"high\" DOUBLE PRECISION, \
    \"low\" DOUBLE PRECISION, \"close\" DOUBLE PRECISION NOT NULL, \"adj_close\" DOUBLE PRECISION, \
    \"volume\" BIGINT, \"sma_7\" DOUBLE PRECISION, \"sma_14\" DOUBLE PRECISION, \
    \"sma_20\" DOUBLE PRECISION, \"ema_12\" DOUBLE PRECISION, \"macd\" DOUBLE PRECISION, \
    \"macd_signal\" DOUBLE PRECISION, \"macd_histogram\" DOUBLE PRECISION, \"rsi\" DOUBLE PRECISION, \
    \"bb_upper\" DOUBLE PRECISION, \"bb_middle\" DOUBLE PRECISION, \"bb_lower\" DOUBLE PRECISION, \
    \"volatility_20d\" DOUBLE PRECISION, \"daily_return\" DOUBLE PRECISION, \
    \"daily_return_pct\" DOUBLE PRECISION, \"currency\" VARCHAR(65535), \"exchange\" VARCHAR(65535), \
    \"instrument_type\" VARCHAR(65535), \"regular_market_price\" DOUBLE PRECISION, \
    \"fifty_two_week_high\" DOUBLE PRECISION, \"fifty_two_week_low\" DOUBLE PRECISION, \
    \"long_name\" VARCHAR(65535), \"short_name\" VARCHAR(65535), \
    \"created_at\" TIMESTAMPTZ NOT NULL, \"updated_at\" TIMESTAMPTZ NOT NULL";

fn uris() -> Vec<String> {
    vec![
        "s3://lake-bucket/prod/curated/market_data/ticker=AAPL/year=2024/part-0.parquet".into(),
        "s3://lake-bucket/prod/curated/market_data/ticker=AAPL/year=2025/part-0.parquet".into(),
    ]
}

fn head(copies: &[String]) -> Vec<String> {
    let mut v = vec![
        "LOCK \"public\".\"fact_market_data\"".to_string(),
        format!("CREATE TEMP TABLE \"mdp_stage\" ({STAGE_DEFINITIONS})"),
    ];
    for uri in copies {
        v.push(format!(
            "COPY \"mdp_stage\" ({FILE_COLS}) FROM '{uri}' IAM_ROLE '{ROLE}' FORMAT AS PARQUET"
        ));
    }
    v.push(
        "SELECT count(*), count(DISTINCT \"date\"), count(CASE WHEN \"ticker\" <> 'AAPL' THEN 1 END) \
         FROM \"mdp_stage\""
            .to_string(),
    );
    v
}

fn sqls(strategy: LoadStrategy, uris: &[String]) -> Vec<String> {
    load_statements("public", "fact_market_data", uris, ROLE, strategy, "AAPL")
        .into_iter()
        .map(|s| s.sql)
        .collect()
}

fn assert_statements(actual: Vec<String>, expected: Vec<String>) {
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "statement {i}");
    }
    assert_eq!(actual.len(), expected.len());
}

const KEY: &str = "\"fact_market_data\".\"ticker\" = \"mdp_stage\".\"ticker\" AND \
    \"fact_market_data\".\"date\" = \"mdp_stage\".\"date\"";

#[test]
fn upsert_statements() {
    let unchanged: Vec<String> = [
        "open",
        "high",
        "low",
        "close",
        "adj_close",
        "volume",
        "sma_7",
        "sma_14",
        "sma_20",
        "ema_12",
        "macd",
        "macd_signal",
        "macd_histogram",
        "rsi",
        "bb_upper",
        "bb_middle",
        "bb_lower",
        "volatility_20d",
        "daily_return",
        "daily_return_pct",
        "currency",
        "exchange",
        "instrument_type",
        "regular_market_price",
        "fifty_two_week_high",
        "fifty_two_week_low",
        "long_name",
        "short_name",
    ]
    .iter()
    .map(|c| {
        format!(
            "(\"fact_market_data\".\"{c}\" = \"mdp_stage\".\"{c}\" OR \
             (\"fact_market_data\".\"{c}\" IS NULL AND \"mdp_stage\".\"{c}\" IS NULL))"
        )
    })
    .collect();
    let sets = "\"open\" = \"mdp_stage\".\"open\", \"high\" = \"mdp_stage\".\"high\", \
        \"low\" = \"mdp_stage\".\"low\", \"close\" = \"mdp_stage\".\"close\", \
        \"adj_close\" = \"mdp_stage\".\"adj_close\", \"volume\" = \"mdp_stage\".\"volume\", \
        \"sma_7\" = \"mdp_stage\".\"sma_7\", \"sma_14\" = \"mdp_stage\".\"sma_14\", \
        \"sma_20\" = \"mdp_stage\".\"sma_20\", \"ema_12\" = \"mdp_stage\".\"ema_12\", \
        \"macd\" = \"mdp_stage\".\"macd\", \"macd_signal\" = \"mdp_stage\".\"macd_signal\", \
        \"macd_histogram\" = \"mdp_stage\".\"macd_histogram\", \"rsi\" = \"mdp_stage\".\"rsi\", \
        \"bb_upper\" = \"mdp_stage\".\"bb_upper\", \"bb_middle\" = \"mdp_stage\".\"bb_middle\", \
        \"bb_lower\" = \"mdp_stage\".\"bb_lower\", \"volatility_20d\" = \"mdp_stage\".\"volatility_20d\", \
        \"daily_return\" = \"mdp_stage\".\"daily_return\", \
        \"daily_return_pct\" = \"mdp_stage\".\"daily_return_pct\", \
        \"currency\" = \"mdp_stage\".\"currency\", \"exchange\" = \"mdp_stage\".\"exchange\", \
        \"instrument_type\" = \"mdp_stage\".\"instrument_type\", \
        \"regular_market_price\" = \"mdp_stage\".\"regular_market_price\", \
        \"fifty_two_week_high\" = \"mdp_stage\".\"fifty_two_week_high\", \
        \"fifty_two_week_low\" = \"mdp_stage\".\"fifty_two_week_low\", \
        \"long_name\" = \"mdp_stage\".\"long_name\", \"short_name\" = \"mdp_stage\".\"short_name\", \
        \"updated_at\" = \"mdp_stage\".\"updated_at\"";
    let stage_cols = COLS.replace(
        "\"ticker\", \"date\"",
        "\"mdp_stage\".\"ticker\", \"mdp_stage\".\"date\"",
    );
    let stage_cols = stage_cols
        .split(", ")
        .map(|c| {
            if c.starts_with("\"mdp_stage\".") {
                c.to_string()
            } else {
                format!("\"mdp_stage\".{c}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut expected = head(&uris());
    expected.extend([
        format!(
            "DELETE FROM \"mdp_stage\" USING \"public\".\"fact_market_data\" WHERE {KEY} AND {}",
            unchanged.join(" AND ")
        ),
        format!(
            "SELECT count(*) FROM \"mdp_stage\" WHERE NOT EXISTS \
             (SELECT 1 FROM \"public\".\"fact_market_data\" WHERE {KEY})"
        ),
        format!(
            "MERGE INTO \"public\".\"fact_market_data\" USING \"mdp_stage\" ON {KEY} \
             WHEN MATCHED THEN UPDATE SET {sets} \
             WHEN NOT MATCHED THEN INSERT ({COLS}) VALUES ({stage_cols})"
        ),
        "DROP TABLE \"mdp_stage\"".to_string(),
    ]);
    assert_statements(sqls(LoadStrategy::Upsert, &uris()), expected);
    let steps: Vec<Step> = load_statements(
        "public",
        "fact_market_data",
        &uris(),
        ROLE,
        LoadStrategy::Upsert,
        "AAPL",
    )
    .into_iter()
    .map(|s| s.step)
    .collect();
    assert_eq!(
        steps,
        [
            Step::Lock,
            Step::CreateStage,
            Step::CopyFromS3,
            Step::CopyFromS3,
            Step::CheckStage,
            Step::DropUnchanged,
            Step::CountNew,
            Step::Merge,
            Step::DropStage
        ]
    );
}

#[test]
fn append_statements() {
    let mut expected = head(&uris());
    expected.extend([
        format!(
            "INSERT INTO \"public\".\"fact_market_data\" ({COLS}) SELECT {COLS} FROM \"mdp_stage\" \
             WHERE NOT EXISTS (SELECT 1 FROM \"public\".\"fact_market_data\" WHERE {KEY})"
        ),
        "DROP TABLE \"mdp_stage\"".to_string(),
    ]);
    assert_statements(sqls(LoadStrategy::Append, &uris()), expected);
}

#[test]
fn truncate_insert_statements() {
    let prefix = vec!["s3://lake-bucket/prod/curated/market_data/ticker=AAPL/".to_string()];
    let mut expected = head(&prefix);
    expected.extend([
        "DELETE FROM \"public\".\"fact_market_data\" WHERE \"ticker\" = 'AAPL'".to_string(),
        format!(
            "INSERT INTO \"public\".\"fact_market_data\" ({COLS}) SELECT {COLS} FROM \"mdp_stage\""
        ),
        "DROP TABLE \"mdp_stage\"".to_string(),
    ]);
    assert_statements(sqls(LoadStrategy::TruncateInsert, &prefix), expected);
}

#[test]
fn the_default_role_and_quotes_in_literals() {
    let s = load_statements(
        "s",
        "t",
        &["s3://b/k".into()],
        "default",
        LoadStrategy::Append,
        "A'B",
    );
    assert_eq!(
        s[2].sql,
        format!(
            "COPY \"mdp_stage\" ({FILE_COLS}) FROM 's3://b/k' IAM_ROLE default FORMAT AS PARQUET"
        )
    );
    assert!(s[3].sql.contains("<> 'A''B'"), "{}", s[3].sql);
}

#[test]
fn s3_uris_of_lake_keys() {
    assert_eq!(
        s3_uri("s3://bucket/lake", "curated/market_data/ticker=%5EGSPC/").unwrap(),
        "s3://bucket/lake/curated/market_data/ticker=%5EGSPC/"
    );
    assert_eq!(
        s3_uri("s3://bucket/", "curated/x").unwrap(),
        "s3://bucket/curated/x"
    );
    let err = s3_uri("file://./data", "curated/x").unwrap_err();
    assert!(err.contains("MARKET_DATA_LAKE_URI"), "{err}");
    assert!(s3_uri("s3://b/a\\b", "k").is_err());
}

#[test]
fn connect_options_for_redshift() {
    let o =
        options_of("redshift://etl:p%40ss@cluster.abc.eu-west-1.redshift.amazonaws.com:5439/dev")
            .unwrap();
    assert_eq!(o.get_host(), "cluster.abc.eu-west-1.redshift.amazonaws.com");
    assert_eq!(o.get_port(), 5439);
    assert_eq!(o.get_username(), "etl");
    assert_eq!(o.get_database(), Some("dev"));
    assert_eq!(o.get_application_name(), Some("mdp-warehouse"));
    assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyFull));
    // No accessor for these: Debug shows them (never log options: it shows the password too).
    let debug = format!("{o:?}");
    assert!(
        debug.contains("extra_float_digits: Some(\"2\")"),
        "extra_float_digits"
    );
    assert!(
        debug.contains("password: Some(\"p@ss\")"),
        "password decoded"
    );

    assert_eq!(
        options_of("redshift://u:p@host/dev").unwrap().get_port(),
        5439
    );
    assert_eq!(
        options_of("redshift://u:p@host:5440/dev")
            .unwrap()
            .get_port(),
        5440
    );
    assert_eq!(
        options_of("redshift://u@[::1]/dev").unwrap().get_port(),
        5439
    );
    assert_eq!(
        options_of("redshift://u@[::1]:6000/dev")
            .unwrap()
            .get_port(),
        6000
    );
    let local = options_of("redshift://u@127.0.0.1/dev").unwrap();
    // Unlike postgres://, TLS is verified on loopback too (a tunnel to a cluster).
    assert!(matches!(local.get_ssl_mode(), PgSslMode::VerifyFull));
    let disabled = options_of("redshift://u@host/dev?sslmode=disable").unwrap();
    assert!(matches!(disabled.get_ssl_mode(), PgSslMode::Disable));
    // A postgres:// URL is a Postgres target: it never reaches this adapter.
    let postgres = WarehouseConnection::parse("postgres://u@host/dev", |_| None).unwrap();
    assert_eq!(postgres.kind(), mdp_core::config::WarehouseKind::Postgres);
}

/// A fake server reads what sqlx really sends at connect: the SSLRequest
/// (TLS required: declined here, so the connect fails), and with TLS off
/// the startup parameters.
async fn startup_seen_by_server(options: PgConnectOptions) -> (bool, BTreeMap<String, String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut ssl_requested = false;
        loop {
            // The client hangs up after a declined SSLRequest when TLS is required.
            let Ok(len) = socket.read_i32().await else {
                return (ssl_requested, BTreeMap::new());
            };
            let len = len as usize;
            let mut body = vec![0u8; len - 4];
            socket.read_exact(&mut body).await.unwrap();
            let code = i32::from_be_bytes(body[..4].try_into().unwrap());
            if code == 80_877_103 {
                // SSLRequest: decline.
                ssl_requested = true;
                socket.write_all(b"N").await.unwrap();
                continue;
            }
            assert_eq!(code, 196_608, "protocol 3.0");
            let fields: Vec<String> = body[4..]
                .split(|b| *b == 0)
                .filter(|f| !f.is_empty())
                .map(|f| String::from_utf8(f.to_vec()).unwrap())
                .collect();
            let params = fields
                .chunks(2)
                .map(|kv| (kv[0].clone(), kv[1].clone()))
                .collect::<BTreeMap<_, _>>();
            // ErrorResponse, so the client gives up cleanly.
            let mut msg = Vec::new();
            for (t, v) in [(b'S', "FATAL"), (b'C', "28000"), (b'M', "fake server")] {
                msg.push(t);
                msg.extend_from_slice(v.as_bytes());
                msg.push(0);
            }
            msg.push(0);
            let mut frame = vec![b'E'];
            frame.extend_from_slice(&((msg.len() + 4) as i32).to_be_bytes());
            frame.extend_from_slice(&msg);
            socket.write_all(&frame).await.unwrap();
            return (ssl_requested, params);
        }
    });
    let options = options.host("127.0.0.1").port(port);
    use sqlx::ConnectOptions;
    assert!(options.connect().await.is_err());
    server.await.unwrap()
}

#[tokio::test]
async fn startup_parameters_are_ones_redshift_accepts() {
    let options = options_of("redshift://etl:secret@cluster:5439/dev?sslmode=disable").unwrap();
    let (ssl, params) = startup_seen_by_server(options).await;
    assert!(!ssl);
    let mut expected: BTreeMap<String, String> = [
        ("user", "etl"),
        ("database", "dev"),
        ("DateStyle", "ISO, MDY"),
        ("client_encoding", "UTF8"),
        ("TimeZone", "UTC"),
        ("extra_float_digits", "2"),
        ("application_name", "mdp-warehouse"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Ok(options) = std::env::var("PGOPTIONS") {
        expected.insert("options".into(), options);
    }
    assert_eq!(params, expected);
}

#[tokio::test]
async fn tls_is_requested_first_by_default() {
    let options = options_of("redshift://etl:secret@cluster:5439/dev").unwrap();
    let (ssl, _) = startup_seen_by_server(options).await;
    assert!(ssl);
}
