//! Backend-specific behaviour of Postgres and Redshift URLs: unreachable
//! servers, passwords never shown, legacy tables, failed COPYs, dropped connections.

mod common;

use common::*;

// ---------------------------------------------------------------------------
// Backend-specific behaviour

fn strategy_names() -> [LoadStrategy; 3] {
    [Upsert, Append, TruncateInsert]
}

#[tokio::test]
async fn postgres_unreachable_is_transient_and_hides_the_password() {
    let started = Instant::now();
    let cfg = config(&[(
        "WAREHOUSE_URL",
        "postgres://postgres:hunter2@127.0.0.1:1/test".into(),
    )]);
    let err = StageError::from(connect_rows(&cfg).await.unwrap_err());
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(
        err.message()
            .contains("postgres://postgres:***@127.0.0.1:1/test"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed fast: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn redshift_unreachable_is_transient_and_hides_the_password() {
    let started = Instant::now();
    let cfg = config(&[
        (
            "WAREHOUSE_URL",
            "redshift://etl:hunter2@127.0.0.1:1/dev".into(),
        ),
        ("WAREHOUSE_REDSHIFT_IAM_ROLE", "default".into()),
    ]);
    let err = StageError::from(mdp_warehouse::connect(&cfg).await.unwrap_err());
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(
        err.message().contains("redshift://etl:***@127.0.0.1:1/dev"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A `redshift://` URL speaks the Postgres protocol: pointed at the local
/// Postgres (TLS off) it connects, and the Redshift load refuses what it
/// cannot do before sending any SQL.
#[tokio::test]
async fn redshift_url_connects_over_the_postgres_protocol() {
    let url = postgres_url();
    let Some(rest) = url.strip_prefix("postgres://") else {
        return;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if !authority.rsplit('@').next().unwrap_or("").contains(':') {
        return; // no explicit port: redshift:// would default to 5439
    }
    let sep = if rest.contains('?') { '&' } else { '?' };
    let cfg = config(&[
        (
            "WAREHOUSE_URL",
            format!("redshift://{rest}{sep}sslmode=disable"),
        ),
        (
            "WAREHOUSE_REDSHIFT_IAM_ROLE",
            "arn:aws:iam::1:role/copy".into(),
        ),
    ]);
    let wh = mdp_warehouse::connect(&cfg).await.unwrap();
    assert!(
        wh.describe().starts_with("redshift redshift://"),
        "{}",
        wh.describe()
    );

    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let msft = ticker("MSFT");
    let keys = vec![mdp_core::Lake::curated_key(&msft, 2024)];
    put_partition(&lake, &rows("MSFT", 0, 3), 2024).await;
    let batch = CuratedBatch {
        lake: &lake,
        ticker: &msft,
        partitions: Partitions::Keys(keys),
    };
    let err = wh.load(&batch, Upsert).await.unwrap_err();
    assert_permanent(
        err.into(),
        &["loads with COPY from S3", "MARKET_DATA_LAKE_URI", "file://"],
    );
    // Loading rows is not something a Redshift warehouse offers: the adapter
    // has no such method (RedshiftWarehouse is no RowWarehouse), so there is
    // no run-time "unsupported" path left to test.
    wh.close().await;
}

#[tokio::test]
async fn postgres_describe_never_shows_the_password() {
    let url = postgres_url();
    // Add a password when the test URL has none (trust auth ignores it).
    let with_password = match url
        .split_once("://")
        .and_then(|(scheme, rest)| Some((scheme, rest.split_once('@')?)))
    {
        Some((scheme, (user, host))) if !user.contains(':') => {
            format!("{scheme}://{user}:hunter2@{host}")
        }
        _ => url.clone(),
    };
    let cfg = config(&[("WAREHOUSE_URL", with_password.clone())]);
    match connect_rows(&cfg).await {
        Ok(wh) => {
            let described = wh.describe();
            assert!(!described.contains("hunter2"), "{described}");
            assert!(!format!("{wh:?}").contains("hunter2"));
            if with_password.contains("hunter2") {
                assert!(described.contains(":***@"), "{described}");
            }
            assert!(
                described.starts_with("postgres ")
                    && described.ends_with("table public.fact_market_data"),
                "{described}"
            );
            wh.close().await;
        }
        Err(err) => assert!(!err.to_string().contains("hunter2"), "{err}"),
    }
}

/// A table made by the original Airflow DDL (`id SERIAL`, DECIMAL(18,6)
/// numbers, timestamps without time zone) loads in place.
#[tokio::test]
async fn postgres_loads_into_a_legacy_airflow_table() {
    run(Db::Postgres, |env: Arc<Env>| async move {
        let table = env.qualified(TABLE);
        env.exec(&format!("CREATE SCHEMA \"{}\"", env.schema)).await;
        let numbers: Vec<String> = COLUMNS[2..30]
            .iter()
            .map(|c| match *c {
                "volume" => "volume BIGINT".to_string(),
                "currency" | "exchange" | "instrument_type" => format!("{c} VARCHAR(50)"),
                "long_name" | "short_name" => format!("{c} VARCHAR(255)"),
                c => format!("{c} DECIMAL(18,6)"),
            })
            .collect();
        env.exec(&format!(
            "CREATE TABLE {table} (id SERIAL PRIMARY KEY, ticker VARCHAR(10) NOT NULL, date DATE NOT NULL, {}, \
             created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, \
             UNIQUE (ticker, date))",
            numbers.join(", ")
        ))
        .await;
        let wh = env.warehouse(1000).await; // migrate adds only the indexes
        // Rows whose values fit DECIMAL(18,6).
        let decimal_rows = |ticker: &str, count: usize| {
            let mut out = rows(ticker, 0, count);
            for r in &mut out {
                r.meta.fifty_two_week_high = Some(200.0);
                r.meta.fifty_two_week_low = Some(50.0);
                r.bar.volume = Some(1000);
            }
            out
        };
        let msft = decimal_rows("MSFT", 30);
        assert_eq!(wh.load_rows(&ticker("MSFT"), &msft, Upsert).await.unwrap(), report(30, 30, 0, 0));
        assert_eq!(wh.load_rows(&ticker("MSFT"), &msft, Upsert).await.unwrap(), report(30, 0, 0, 0));
        for strategy in strategy_names() {
            wh.load_rows(&ticker("MSFT"), &msft, strategy).await.unwrap();
        }
        let back = wh.read_rows(None).await.unwrap();
        assert_eq!(back.len(), 30);
        for (b, r) in back.iter().zip(&msft) {
            assert_eq!(b.date(), r.date());
            assert!((b.bar.close - r.bar.close).abs() < 1e-6, "{} vs {}", b.bar.close, r.bar.close);
            assert_eq!(b.created_at, r.created_at);
        }
        // A load too large to go direct, of a ticker the table does not
        // hold: COPY cannot go straight into DECIMAL columns, so it stages.
        let aapl = decimal_rows("AAPL", 1500);
        assert_eq!(wh.load_rows(&ticker("AAPL"), &aapl, Upsert).await.unwrap(), report(1500, 1500, 0, 0));
        assert_eq!(wh.read_rows(Some(&ticker("AAPL"))).await.unwrap().len(), 1500);
        let indexes = env.indexes(TABLE).await;
        assert!(indexes.iter().any(|i| i == "idx_fact_market_data_date"), "{indexes:?}");
        assert!(!indexes.iter().any(|i| i == "idx_fact_market_data_ticker_date"), "{indexes:?}");
        wh.close().await;
    })
    .await;
}

/// A failure while the rows stream in (here a date Postgres cannot hold)
/// aborts the COPY: the table is unchanged and the pooled connection is fine.
#[tokio::test]
async fn postgres_copy_failure_leaves_the_table_unchanged() {
    run(Db::Postgres, |env: Arc<Env>| async move {
        let wh = env.warehouse(100).await;
        let msft = rows("MSFT", 0, 50);
        wh.load_rows(&ticker("MSFT"), &msft, Upsert).await.unwrap();

        let mut incoming = rows("MSFT", 0, 400);
        incoming[399].bar.date = NaiveDate::from_ymd_opt(-10_000, 1, 1).unwrap();
        for strategy in strategy_names() {
            let err = wh
                .load_rows(&ticker("MSFT"), &incoming, strategy)
                .await
                .unwrap_err();
            assert_permanent(err.into(), &["loading MSFT into", "out of range"]);
            assert_identical(&wh.read_rows(None).await.unwrap(), &msft);
        }
        incoming.pop();
        let r = wh
            .load_rows(&ticker("MSFT"), &incoming, TruncateInsert)
            .await
            .unwrap();
        assert_eq!(r, report(399, 399, 0, 50));
        assert_identical(&wh.read_rows(None).await.unwrap(), &incoming);
        wh.close().await;
    })
    .await;
}

/// A warm function's pooled connection can be cut by the server (idle
/// timeout, failover, restart): the next load gets a new one.
#[tokio::test]
async fn postgres_pool_replaces_a_connection_the_server_dropped() {
    let app = format!("mdp_wh_test_drop_{:016x}", fastrand::u64(..));
    let schema = app.clone();
    let url = format!("{}?application_name={app}", postgres_url());
    let wh = connect_rows(&config(&[
        ("WAREHOUSE_URL", url),
        ("WAREHOUSE_SCHEMA", schema.clone()),
        ("WAREHOUSE_POOL_SIZE", "1".into()),
    ]))
    .await
    .unwrap();
    wh.migrate().await.unwrap();
    let t = ticker("DROP");
    wh.load_rows(&t, &rows("DROP", 0, 10), Upsert)
        .await
        .unwrap();

    let admin = PgPool::connect(&postgres_url()).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) t",
    )
    .bind(&app)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(killed >= 1, "the pooled connection was there to drop");

    let result = wh.load_rows(&t, &rows("DROP", 0, 20), Upsert).await;
    let rows_after = wh.read_rows(Some(&t)).await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let report = result.expect("the next load reconnects");
    assert_eq!(report.inserted, 10);
    assert_identical(&rows_after.unwrap(), &rows("DROP", 0, 20));
}

/// Passwords of every character class a URL treats specially, in Postgres
/// and Redshift URLs: no form of them (as written, percent-encoded either
/// case, decoded) shows in a connect error, and on a reachable server
/// (trust auth ignores the password) not in `describe` or `Debug` either.
#[tokio::test]
async fn no_password_of_any_character_class_is_ever_shown() {
    let passwords = [
        "sl/ash12",
        "at@sign12",
        "co:lon12",
        "quest?ion",
        "ha#sh123",
        "per%cent",
        "spa ce12",
        "quo'te\"12",
        "pässwörd✓",
        "m/i@x:e?d#%✓",
    ];
    let forms = |p: &str| {
        let encoded = mdp_core::encoding::percent_encode(p, mdp_core::encoding::UNRESERVED);
        [p.to_string(), encoded.clone(), encoded.to_lowercase()]
    };
    let local = postgres_url();
    let authority = local
        .strip_prefix("postgres://")
        .and_then(|rest| rest.split(['/', '?']).next())
        .unwrap_or("");
    let (user, host) = authority
        .rsplit_once('@')
        .unwrap_or(("postgres", authority));
    let user = user.split(':').next().unwrap_or("postgres");
    for password in passwords {
        let encoded = mdp_core::encoding::percent_encode(password, mdp_core::encoding::UNRESERVED);
        for url in [
            format!("postgres://etl:{encoded}@127.0.0.1:1/db"),
            format!("redshift://etl:{encoded}@127.0.0.1:1/dev"),
        ] {
            let cfg = config(&[
                ("WAREHOUSE_URL", url.clone()),
                ("WAREHOUSE_REDSHIFT_IAM_ROLE", "default".into()),
            ]);
            let err = StageError::from(mdp_warehouse::connect(&cfg).await.unwrap_err());
            let shown = format!("{err} {err:?} {cfg:?}");
            for form in forms(password) {
                assert!(
                    !shown.contains(&form),
                    "{password:?} as {form:?} in {shown}"
                );
            }
            assert!(err.message().contains("etl:***@127.0.0.1:1"), "{err}");
        }
        // Reachable: the local server with trust auth accepts any password.
        let url = format!("postgres://{user}:{encoded}@{host}/test");
        let wh = connect_rows(&config(&[("WAREHOUSE_URL", url)]))
            .await
            .unwrap();
        let shown = format!("{} {wh:?}", wh.describe());
        for form in forms(password) {
            assert!(
                !shown.contains(&form),
                "{password:?} as {form:?} in {shown}"
            );
        }
        wh.close().await;
    }
}
