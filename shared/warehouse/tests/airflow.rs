//! A warehouse created by the Airflow pipeline's DDL, migrated in place on
//! Postgres and loaded into with every strategy.

mod common;

use common::*;

/// The original Airflow DDL, exactly (run with the test schema as search path).
const AIRFLOW_DDL: &str = "CREATE TABLE IF NOT EXISTS fact_market_data (
    id SERIAL PRIMARY KEY,
    ticker VARCHAR(10) NOT NULL,
    date DATE NOT NULL,
    open DECIMAL(18,6), high DECIMAL(18,6), low DECIMAL(18,6), close DECIMAL(18,6),
    volume BIGINT,
    sma_7 DECIMAL(18,6), sma_14 DECIMAL(18,6), sma_20 DECIMAL(18,6), ema_12 DECIMAL(18,6),
    macd DECIMAL(18,6), macd_signal DECIMAL(18,6), macd_histogram DECIMAL(18,6), rsi DECIMAL(18,6),
    bb_upper DECIMAL(18,6), bb_middle DECIMAL(18,6), bb_lower DECIMAL(18,6),
    volatility_20d DECIMAL(18,6), daily_return DECIMAL(18,6), daily_return_pct DECIMAL(18,6),
    currency VARCHAR(10), exchange VARCHAR(50), instrument_type VARCHAR(50),
    regular_market_price DECIMAL(18,6), fifty_two_week_high DECIMAL(18,6), fifty_two_week_low DECIMAL(18,6),
    long_name VARCHAR(255), short_name VARCHAR(100),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    UNIQUE(ticker, date)
);";

/// The Airflow table's own columns, for before/after snapshots.
const AIRFLOW_COLUMNS: &str = "id, ticker, date, open, high, low, close, volume, sma_7, sma_14, \
    sma_20, ema_12, macd, macd_signal, macd_histogram, rsi, bb_upper, bb_middle, bb_lower, \
    volatility_20d, daily_return, daily_return_pct, currency, exchange, instrument_type, \
    regular_market_price, fifty_two_week_high, fifty_two_week_low, long_name, short_name, \
    created_at, updated_at";

impl Env {
    fn pg(&self) -> &PgPool {
        match &self.admin {
            Admin::Postgres(pool) => pool,
            Admin::Sqlite(_) => panic!("a Postgres test"),
        }
    }

    /// Every row as text, by id (the DECIMALs exactly as stored).
    async fn snapshot(&self, columns: &str) -> Vec<String> {
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT ({columns})::text FROM {} ORDER BY id",
            self.qualified(TABLE)
        )))
        .fetch_all(self.pg())
        .await
        .unwrap()
    }

    /// Columns with their full types, and index definitions with names.
    async fn shape(&self) -> (Vec<String>, Vec<String>) {
        let columns = sqlx::query_scalar(
            "SELECT attname || ' ' || format_type(atttypid, atttypmod) || \
             coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE attrelid = format('%I.%I', $1::text, $2::text)::regclass AND attnum > 0 AND NOT attisdropped \
             ORDER BY attnum",
        )
        .bind(&self.schema)
        .bind(TABLE)
        .fetch_all(self.pg())
        .await
        .unwrap();
        let mut indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexrelid::regclass::text || ' ' || split_part(pg_get_indexdef(indexrelid), ' USING ', 2) \
             FROM pg_index WHERE indrelid = format('%I.%I', $1::text, $2::text)::regclass",
        )
        .bind(&self.schema)
        .bind(TABLE)
        .fetch_all(self.pg())
        .await
        .unwrap();
        indexes.sort();
        (columns, indexes)
    }
}

/// Rows whose values fit DECIMAL(18,6) (under 10^12).
fn fitting(mut rows: Vec<CuratedRow>) -> Vec<CuratedRow> {
    for r in &mut rows {
        r.meta.fifty_two_week_high = Some(200.0);
        r.meta.fifty_two_week_low = Some(50.0);
    }
    rows
}

/// The stored value of a DECIMAL(18,6) read back as f64 is within the rounding.
fn assert_close(actual: &[CuratedRow], expected: &[CuratedRow]) {
    assert_eq!(actual.len(), expected.len(), "row count");
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!((a.ticker.as_str(), a.date()), (e.ticker.as_str(), e.date()));
        assert!(
            (a.bar.close - e.bar.close).abs() <= 5e-7,
            "{} vs {}",
            a.bar.close,
            e.bar.close
        );
        // adj_close is the DOUBLE PRECISION column migrate added: exact.
        assert_eq!(
            a.bar.adj_close.map(f64::to_bits),
            e.bar.adj_close.map(f64::to_bits)
        );
        assert_eq!(a.bar.volume, e.bar.volume);
        assert_eq!(a.meta.long_name, e.meta.long_name);
        assert_eq!(a.updated_at, e.updated_at);
    }
}

/// The exact Airflow DDL, with rows inserted by plain INSERTs: migrate adopts
/// it in place (every row and value kept, adj_close and the indexes added,
/// ticker widened, DECIMALs left alone, versions recorded), twice is a no-op,
/// and then every strategy loads into it, each as one transaction.
#[tokio::test]
async fn postgres_migrates_the_airflow_table_in_place_and_loads_into_it() {
    run(Db::Postgres, |env: Arc<Env>| async move {
        let table = env.qualified(TABLE);
        env.exec(&format!(
            "CREATE SCHEMA \"{0}\"; BEGIN; SET LOCAL search_path TO \"{0}\"; {AIRFLOW_DDL} COMMIT;",
            env.schema
        ))
        .await;
        // Rows as the Airflow pipeline left them, and one index of its tuning
        // guide under its own name (migrate must not add a twin, and drops it:
        // the unique (ticker, date) index serves its queries).
        env.exec(&format!(
            "INSERT INTO {table} (ticker, date, open, high, low, close, volume, sma_7, rsi, currency, \
             exchange, instrument_type, regular_market_price, fifty_two_week_high, fifty_two_week_low, \
             long_name, short_name) VALUES \
             ('AAPL', '2024-01-02', 187.150002, 188.440002, 183.885, 185.639999, 82488700, NULL, 54.321012, \
              'USD', 'NMS', 'EQUITY', 185.64, 199.62, 164.08, 'Apple Inc.', 'Apple'), \
             ('AAPL', '2024-01-03', 184.220001, 185.880005, 183.429993, 184.25, 58414500, 186.1, 48.5, \
              'USD', 'NMS', 'EQUITY', 184.25, 199.62, 164.08, 'Apple Inc.', 'Apple'); \
             INSERT INTO {table} (ticker, date, close, volume, long_name, created_at, updated_at) VALUES \
             ('MSFT', '2024-01-02', 370.869995, 25258600, 'Microsoft Corporation', '2024-01-02 21:00:00', '2024-01-02 21:00:00'), \
             ('MSFT', '2024-01-03', 370.600006, NULL, NULL, '2024-01-03 21:00:00', '2024-01-03 21:30:00.123456'); \
             CREATE INDEX idx_market_data_ticker_date ON {table} (ticker, date DESC);"
        ))
        .await;
        let before = env.snapshot(AIRFLOW_COLUMNS).await;
        assert_eq!(before.len(), 4);
        let (columns_before, _) = env.shape().await;

        let wh = env.warehouse(1000).await; // migrates
        assert_eq!(env.snapshot(AIRFLOW_COLUMNS).await, before, "every row and value kept");
        let (columns, indexes) = env.shape().await;
        let mut expected_columns: Vec<String> = columns_before
            .iter()
            .map(|c| c.replace("ticker character varying(10)", "ticker character varying(16)"))
            .collect();
        expected_columns.push("adj_close double precision".into());
        assert_eq!(columns, expected_columns);
        assert!(columns.iter().any(|c| c == "close numeric(18,6)"), "{columns:?}");
        assert!(columns.iter().any(|c| c.starts_with("id integer default nextval(")), "{columns:?}");
        let s = &env.schema;
        let mut expected_indexes = vec![
            format!("{s}.fact_market_data_pkey btree (id)"),
            format!("{s}.fact_market_data_ticker_date_key btree (ticker, date)"),
            // The Airflow guide's (ticker, date DESC) index and our (ticker)
            // are dropped by 003: the unique (ticker, date) serves their queries.
            format!("{s}.idx_fact_market_data_date btree (date DESC)"),
        ];
        expected_indexes.sort();
        assert_eq!(indexes, expected_indexes);
        let records = env.migrations(TABLE).await;
        let got: Vec<(i32, &str)> = records.iter().map(|(v, d, _)| (*v, d.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, "create_fact_market_data (table existed: recorded, not run)"),
                (2, "adopt_airflow_table"),
                (3, "drop_redundant_indexes"),
                (4, "create_corporate_actions_and_quality_tables")
            ]
        );
        // The side tables are there beside the adopted table, and take a load.
        let aapl_side = ticker("AAPL");
        let dividend = mdp_core::quality::CorporateAction {
            date: day(3),
            kind: mdp_core::quality::ActionKind::Dividend,
            amount: Some(0.24),
            numerator: None,
            denominator: None,
        };
        let side = mdp_warehouse::SideBatch {
            ticker: &aapl_side,
            actions: std::slice::from_ref(&dividend),
            findings: &[],
            quarantine: &[],
            now: base_time(),
        };
        let loaded = wh.load_side(&side, Upsert).await.unwrap();
        assert_eq!(loaded.actions, report(1, 1, 0, 0));
        assert_eq!(wh.read_side(&aapl_side).await.unwrap().actions[0].action, dividend);

        // Twice: nothing changes, not even the records' times.
        wh.migrate().await.unwrap();
        assert_eq!(env.migrations(TABLE).await, records);
        assert_eq!(env.shape().await, (columns.clone(), indexes.clone()));
        assert_eq!(env.snapshot(AIRFLOW_COLUMNS).await, before);

        let id_of = |ticker: &'static str, date: &'static str| {
            let env = env.clone();
            async move {
                sqlx::query_scalar::<_, i32>(AssertSqlSafe(format!(
                    "SELECT id FROM {} WHERE ticker = $1 AND date = $2::date",
                    env.qualified(TABLE)
                )))
                .bind(ticker)
                .bind(date)
                .fetch_one(env.pg())
                .await
                .unwrap()
            }
        };
        let aapl_first = id_of("AAPL", "2024-01-02").await;
        let msft_rows = |env: Arc<Env>| async move {
            sqlx::query_scalar::<_, String>(AssertSqlSafe(format!(
                "SELECT ({AIRFLOW_COLUMNS})::text FROM {} WHERE ticker = 'MSFT' ORDER BY id",
                env.qualified(TABLE)
            )))
            .fetch_all(env.pg())
            .await
            .unwrap()
        };
        let msft_before = msft_rows(env.clone()).await;

        // Upsert: the two stored AAPL days are updated in place, three are new.
        let aapl = fitting(rows("AAPL", 0, 5));
        assert_eq!(wh.load_rows(&ticker("AAPL"), &aapl, Upsert).await.unwrap(), report(5, 3, 2, 0));
        assert_eq!(env.count(TABLE).await, 7);
        assert_eq!(id_of("AAPL", "2024-01-02").await, aapl_first, "updated in place");
        let new_id = id_of("AAPL", "2024-01-06").await;
        assert!(new_id > 4, "serial continues: {new_id}");
        let back = wh.read_rows(Some(&ticker("AAPL"))).await.unwrap();
        assert_close(&back, &aapl);
        // Updated rows keep the created_at the Airflow pipeline stored; new rows get theirs.
        assert_ne!(back[0].created_at, aapl[0].created_at);
        assert_eq!(back[4].created_at, aapl[4].created_at);
        // Reloading the same rows rewrites nothing: compared after the DECIMAL cast.
        assert_eq!(
            wh.load_rows(&ticker("AAPL"), &later(aapl.clone(), TimeDelta::days(1)), Upsert)
                .await
                .unwrap(),
            report(5, 0, 0, 0)
        );

        // Append: days 3 and 4 exist, 5 and 6 are new.
        let more = fitting(rows("AAPL", 3, 4));
        assert_eq!(wh.load_rows(&ticker("AAPL"), &more, Append).await.unwrap(), report(4, 2, 0, 0));
        assert_eq!(env.count(TABLE).await, 9);

        // Truncate_insert: AAPL's 7 rows replaced; MSFT's stored rows untouched.
        let replacement = fitting(rows("AAPL", 10, 3));
        assert_eq!(
            wh.load_rows(&ticker("AAPL"), &replacement, TruncateInsert).await.unwrap(),
            report(3, 3, 0, 7)
        );
        assert_eq!(env.count(TABLE).await, 5);
        assert_close(&wh.read_rows(Some(&ticker("AAPL"))).await.unwrap(), &replacement);
        assert_eq!(msft_rows(env.clone()).await, msft_before);
        let distinct: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(DISTINCT (ticker, date)) FROM {table}"
        )))
        .fetch_one(env.pg())
        .await
        .unwrap();
        assert_eq!(distinct, 5, "never a duplicate");

        // DECIMAL(18,6) rounding of the loaded doubles (15 significant digits,
        // then half away from zero to 6 places), and a 12-character ticker
        // the widened column now holds.
        let long = ticker("ABCDEFGHIJ.K");
        let mut r = fitting(rows("ABCDEFGHIJ.K", 0, 1)).remove(0);
        r.bar.open = Some(1.0 / 3.0);
        r.bar.high = Some(5e-7);
        r.bar.low = Some(-5e-7);
        r.bar.close = 123_456_789_012.345_67;
        r.indicators.sma_7 = Some(2.5e-7);
        r.indicators.rsi = Some(0.123_456_5);
        r.bar.adj_close = Some(1.0 / 3.0);
        assert_eq!(wh.load_rows(&long, &[r], Upsert).await.unwrap(), report(1, 1, 0, 0));
        let stored: (String, String, String, String, String, String, f64) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT open::text, high::text, low::text, close::text, sma_7::text, rsi::text, adj_close \
             FROM {table} WHERE ticker = 'ABCDEFGHIJ.K'"
        )))
        .fetch_one(env.pg())
        .await
        .unwrap();
        assert_eq!(
            stored,
            (
                "0.333333".into(),
                "0.000001".into(),
                "-0.000001".into(),
                "123456789012.346000".into(),
                "0.000000".into(),
                "0.123457".into(),
                1.0 / 3.0
            )
        );
        // 10^12 does not fit: a permanent error, nothing written.
        let mut too_big = fitting(rows("AAPL", 20, 2));
        too_big[1].bar.close = 1e12;
        let full = env.snapshot(&format!("{AIRFLOW_COLUMNS}, adj_close")).await;
        let err = wh.load_rows(&ticker("AAPL"), &too_big, Upsert).await.unwrap_err();
        assert_permanent(err.into(), &["numeric field overflow"]);
        assert_eq!(env.snapshot(&format!("{AIRFLOW_COLUMNS}, adj_close")).await, full);

        // A failure between staging and merge (a trigger refusing one row)
        // leaves the table as it was, for every strategy.
        env.exec(&format!(
            "CREATE FUNCTION \"{s}\".refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.ticker = 'AAPL' AND NEW.date = DATE '2024-01-16' THEN \
             RAISE EXCEPTION 'refused AAPL 2024-01-16'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION \"{s}\".refuse()"
        ))
        .await;
        let mut incoming = later(fitting(rows("AAPL", 10, 5)), TimeDelta::days(2)); // 2 new, ending 2024-01-16
        incoming[0].bar.close += 1.0;
        for strategy in strategy_names() {
            let err = wh.load_rows(&ticker("AAPL"), &incoming, strategy).await.unwrap_err();
            assert_permanent(err.into(), &["loading AAPL into", "refused AAPL 2024-01-16"]);
            assert_eq!(env.snapshot(&format!("{AIRFLOW_COLUMNS}, adj_close")).await, full, "{strategy}");
        }
        env.exec(&format!("DROP TRIGGER refuse ON {table}")).await;
        assert_eq!(wh.load_rows(&ticker("AAPL"), &incoming, Upsert).await.unwrap(), report(5, 2, 1, 0));
        wh.close().await;
    })
    .await;
}
