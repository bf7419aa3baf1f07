//! Migrations on both backends: the contract table, versions recorded and
//! applied once (also by concurrent cold starts), tables from before versioning.

mod common;

use common::*;

mod scenarios {
    use super::*;

    pub async fn migrate_is_idempotent_and_creates_the_contract_table(env: Arc<Env>) {
        let wh = env.warehouse(1000).await; // first migrate
        wh.migrate().await.unwrap();
        env.warehouse(1000).await.migrate().await.unwrap();

        let columns = env.columns(TABLE).await;
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, COLUMNS);
        let type_of = |name: &str| {
            columns
                .iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .to_lowercase()
        };
        let expected: [(&str, &str, &str); 7] = [
            ("ticker", "text", "character varying"),
            ("date", "text", "date"),
            ("close", "real", "double precision"),
            ("rsi", "real", "double precision"),
            ("volume", "integer", "bigint"),
            ("long_name", "text", "text"),
            ("updated_at", "text", "timestamp with time zone"),
        ];
        for (name, sqlite, postgres) in expected {
            let want = if env.db == Db::Sqlite {
                sqlite
            } else {
                postgres
            };
            assert_eq!(type_of(name), want, "{name}");
        }

        // (date DESC) for cross-ticker queries; (ticker) and (ticker, date
        // DESC), which the unique key serves, are dropped by the last migration.
        let indexes = env.indexes(TABLE).await;
        assert!(
            indexes.iter().any(|i| i == "idx_fact_market_data_date"),
            "{indexes:?}"
        );
        for name in [
            "idx_fact_market_data_ticker",
            "idx_fact_market_data_ticker_date",
        ] {
            assert!(!indexes.iter().any(|i| i == name), "{name} in {indexes:?}");
        }
        // The unique constraint's index (Postgres names it after the constraint).
        if env.db == Db::Postgres {
            assert!(
                indexes
                    .iter()
                    .any(|i| i == "uq_fact_market_data_ticker_date"),
                "{indexes:?}"
            );
        }
        assert!(wh.read_rows(None).await.unwrap().is_empty());

        let described = wh.describe();
        assert!(
            described.contains(if env.db == Db::Sqlite {
                "sqlite"
            } else {
                "postgres"
            }),
            "{described}"
        );
        assert!(described.contains(TABLE), "{described}");
        wh.close().await;
    }

    /// Every version recorded is not enough: a contract column someone
    /// dropped since makes migrate fail, naming it (the quick check of an
    /// up-to-date schema must not hide it).
    pub async fn a_recorded_schema_missing_a_column_is_refused(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        env.exec(&format!(
            "ALTER TABLE {} DROP COLUMN rsi",
            env.qualified(TABLE)
        ))
        .await;
        let err = wh.migrate().await.unwrap_err();
        assert_permanent(err.into(), &["has no column rsi"]);
        wh.close().await;
    }

    pub async fn migrations_are_versioned_recorded_and_applied_once(env: Arc<Env>) {
        let expected: &[(i32, &str)] = match env.db {
            Db::Sqlite => &[
                (1, "create_fact_market_data"),
                (2, "drop_redundant_indexes"),
                (3, "create_corporate_actions_and_quality_tables"),
            ],
            Db::Postgres => &[
                (1, "create_fact_market_data"),
                (2, "adopt_airflow_table"),
                (3, "drop_redundant_indexes"),
                (4, "create_corporate_actions_and_quality_tables"),
            ],
        };
        let wh = env.warehouse(1000).await;
        let first = env.migrations(TABLE).await;
        let got: Vec<(i32, &str)> = first.iter().map(|(v, d, _)| (*v, d.as_str())).collect();
        assert_eq!(got, expected);
        assert!(
            first.iter().all(|(_, _, at)| at.starts_with("20")),
            "{first:?}"
        );

        // Again, from this and from a new warehouse: nothing applied, nothing recorded.
        wh.migrate().await.unwrap();
        env.warehouse(1000).await.migrate().await.unwrap();
        assert_eq!(env.migrations(TABLE).await, first);

        // A dropped table comes back with the next migrate.
        wh.load_rows(&ticker("MSFT"), &rows("MSFT", 0, 2), Upsert)
            .await
            .unwrap();
        wh.drop_table().await.unwrap();
        wh.migrate().await.unwrap();
        assert_eq!(env.count(TABLE).await, 0);
        let again = env.migrations(TABLE).await;
        let got: Vec<(i32, &str)> = again.iter().map(|(v, d, _)| (*v, d.as_str())).collect();
        assert_eq!(got, expected);
        let first = again;

        // Another table of the schema has its own history.
        env.warehouse_on("other_facts", 1000).await;
        assert_eq!(env.migrations("other_facts").await.len(), expected.len());
        assert_eq!(env.migrations(TABLE).await, first);

        // Cold starts at once: every version applied and recorded once.
        let cfg = env.config("concurrent_facts", 1000);
        let mut cold_starts = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let cfg = cfg.clone();
            cold_starts.spawn(async move {
                let wh = connect_rows(&cfg).await?;
                wh.migrate().await?;
                wh.close().await;
                Ok::<(), WarehouseError>(())
            });
        }
        while let Some(result) = cold_starts.join_next().await {
            result.unwrap().unwrap();
        }
        let got: Vec<i32> = env
            .migrations("concurrent_facts")
            .await
            .iter()
            .map(|(v, _, _)| *v)
            .collect();
        assert_eq!(got, expected.iter().map(|(v, _)| *v).collect::<Vec<_>>());
        let msft = rows("MSFT", 0, 3);
        let wh = env.warehouse_on("concurrent_facts", 1000).await;
        assert_eq!(
            wh.load_rows(&ticker("MSFT"), &msft, Upsert).await.unwrap(),
            report(3, 3, 0, 0)
        );
        wh.close().await;
    }

    /// A database made by the 001 file before migrations were versioned (no
    /// `mdp_schema_migrations`): its 001 is recorded, not run, the rest
    /// applies, and every row stays.
    pub async fn a_table_from_before_the_versioning_is_recognised(env: Arc<Env>) {
        env.exec(&env.create_table_sql(TABLE)).await;
        let wh = connect_rows(&env.config(TABLE, 1000)).await.unwrap();
        let msft = rows("MSFT", 0, 20);
        wh.load_rows(&ticker("MSFT"), &msft, Upsert).await.unwrap();
        assert!(!env.has_migrations_table().await);
        let indexes = env.indexes(TABLE).await;

        wh.migrate().await.unwrap();
        let records = env.migrations(TABLE).await;
        assert_eq!(
            records[0].1, "create_fact_market_data (table existed: recorded, not run)",
            "{records:?}"
        );
        assert_eq!(records.len(), if env.db == Db::Postgres { 4 } else { 3 });
        // No index added twice; the two the unique key serves dropped.
        let kept: Vec<String> = indexes
            .into_iter()
            .filter(|i| {
                i != "idx_fact_market_data_ticker" && i != "idx_fact_market_data_ticker_date"
            })
            .collect();
        assert_eq!(env.indexes(TABLE).await, kept);
        assert_identical(&wh.read_rows(None).await.unwrap(), &msft);
        wh.migrate().await.unwrap();
        assert_eq!(env.migrations(TABLE).await, records);
        wh.close().await;
    }

    /// The tuning guide's query (`WHERE ticker = ? ORDER BY date DESC LIMIT
    /// 1000`) stays an index scan of the unique (ticker, date) index, with no
    /// sort, once the (ticker) and (ticker, date DESC) indexes are gone: on
    /// 100,000 rows of 50 tickers written one ticker after another, as loads
    /// write them, with statistics, as the planner sees a real table.
    pub async fn the_tuning_guide_query_is_served_by_the_unique_key(env: Arc<Env>) {
        let wh = env.warehouse(1000).await; // migrates
        let table = env.qualified(TABLE);
        let query =
            format!("SELECT * FROM {table} WHERE ticker = 'T07' ORDER BY date DESC LIMIT 1000");
        let plan: Vec<String> = match &env.admin {
            Admin::Postgres(pool) => {
                env.exec(&format!(
                    "INSERT INTO {table} (ticker, date, close, created_at, updated_at) \
                     SELECT 'T' || lpad((g / 2000)::text, 2, '0'), DATE '2000-01-03' + (g % 2000), g, now(), now() \
                     FROM generate_series(0, 99999) AS g; ANALYZE {table};"
                ))
                .await;
                sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN {query}")))
                    .fetch_all(pool)
                    .await
                    .unwrap()
            }
            Admin::Sqlite(pool) => {
                env.exec(&format!(
                    "WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < 99999) \
                     INSERT INTO {table} (ticker, date, close, created_at, updated_at) \
                     SELECT printf('T%02d', n / 2000), date('2000-01-03', '+' || (n % 2000) || ' days'), n, \
                     '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' FROM g; ANALYZE;"
                ))
                .await;
                sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {query}")))
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>("detail"))
                    .collect()
            }
        };
        assert_eq!(env.count(TABLE).await, 100_000);
        let plan = plan.join("\n");
        let uses_the_key = match env.db {
            Db::Postgres => {
                plan.contains("Index Scan Backward using uq_fact_market_data_ticker_date")
            }
            // SQLite names a UNIQUE constraint's index after the table.
            Db::Sqlite => {
                plan.contains("USING INDEX sqlite_autoindex_fact_market_data_1 (ticker=?)")
            }
        };
        assert!(uses_the_key, "{plan}");
        for costly in ["Seq Scan", "Sort", "TEMP B-TREE", "SCAN "] {
            assert!(!plan.contains(costly), "{costly} in {plan}");
        }
        wh.close().await;
    }
}

on_both_backends!(
    a_recorded_schema_missing_a_column_is_refused,
    migrate_is_idempotent_and_creates_the_contract_table,
    migrations_are_versioned_recorded_and_applied_once,
    a_table_from_before_the_versioning_is_recognised,
    the_tuning_guide_query_is_served_by_the_unique_key,
);
