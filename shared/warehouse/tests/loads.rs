//! Loads on both backends (SQLite file, Postgres schema; Postgres both with
//! rows bound to the statement and through COPY): every strategy,
//! round trips, idempotence, concurrency, failures and refusals.

mod common;

use common::*;

mod scenarios {
    use super::*;

    /// SQS may deliver one load message twice at the same time: both copies
    /// succeed and the table holds one copy, for every strategy.
    pub async fn the_same_load_twice_at_once_leaves_one_copy(env: Arc<Env>) {
        let wh = env.warehouse(100).await;
        let t = ticker("DUP");
        let other = rows("KEEP", 0, 5);
        wh.load_rows(&ticker("KEEP"), &other, Upsert).await.unwrap();
        for strategy in [Upsert, Append, TruncateInsert] {
            let batch = rows("DUP", 0, 300);
            let (a, b) = tokio::join!(
                wh.load_rows(&t, &batch, strategy),
                wh.load_rows(&t, &batch, strategy)
            );
            a.unwrap_or_else(|e| panic!("{strategy}: {e}"));
            b.unwrap_or_else(|e| panic!("{strategy}: {e}"));
            assert_identical(&wh.read_rows(Some(&t)).await.unwrap(), &batch);
            assert_identical(&wh.read_rows(Some(&ticker("KEEP"))).await.unwrap(), &other);
        }
    }

    pub async fn load_then_read_gives_back_identical_rows(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = rows("MSFT", 0, 30);
        let aapl = rows("AAPL", 5, 25);
        let gspc = rows("^GSPC", 0, 3);
        assert_eq!(
            wh.load_rows(&ticker("MSFT"), &msft, Upsert).await.unwrap(),
            report(30, 30, 0, 0)
        );
        assert_eq!(
            wh.load_rows(&ticker("^GSPC"), &gspc, Upsert).await.unwrap(),
            report(3, 3, 0, 0)
        );
        assert_eq!(
            wh.load_rows(&ticker("AAPL"), &aapl, Upsert).await.unwrap(),
            report(25, 25, 0, 0)
        );

        // Ordered by ticker in byte order, then date.
        let all: Vec<CuratedRow> = aapl.iter().chain(&msft).chain(&gspc).cloned().collect();
        assert_identical(&wh.read_rows(None).await.unwrap(), &all);
        assert_identical(&wh.read_rows(Some(&ticker("MSFT"))).await.unwrap(), &msft);
        assert!(
            wh.read_rows(Some(&ticker("NONE")))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(env.count(TABLE).await, 58);
        wh.close().await;
    }

    pub async fn upsert_twice_changes_nothing(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = rows("MSFT", 0, 40);
        assert_eq!(
            wh.load_rows(&ticker("MSFT"), &msft, Upsert).await.unwrap(),
            report(40, 40, 0, 0)
        );
        // The same values again, stamped later: nothing is rewritten.
        let again = later(msft.clone(), TimeDelta::days(1));
        let second = wh.load_rows(&ticker("MSFT"), &again, Upsert).await.unwrap();
        assert_eq!(second, report(40, 0, 0, 0));
        assert_eq!(second.rows_loaded(), 0);
        assert_identical(&wh.read_rows(None).await.unwrap(), &msft);
        wh.close().await;
    }

    pub async fn upsert_rewrites_changed_rows_and_keeps_created_at(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = rows("MSFT", 0, 30);
        wh.load_rows(&ticker("MSFT"), &msft, Upsert).await.unwrap();

        let stamp = TimeDelta::days(2);
        let mut changed = msft.clone();
        changed[5].bar.close += 1.0;
        changed[5].updated_at += stamp;
        changed[5].created_at += stamp; // an incoming created_at never replaces the stored one
        let r = wh
            .load_rows(&ticker("MSFT"), &changed, Upsert)
            .await
            .unwrap();
        assert_eq!(r, report(30, 0, 1, 0));
        assert_eq!(r.rows_loaded(), 1);

        let mut expected = msft.clone();
        expected[5].bar.close += 1.0;
        expected[5].updated_at += stamp;
        assert_identical(&wh.read_rows(None).await.unwrap(), &expected);

        // NULL-aware comparison: NULL -> value, value -> NULL, plus two new days.
        let mut next = expected.clone();
        assert_eq!(next[1].bar.open, None);
        next[1].bar.open = Some(1.25);
        assert_eq!(next[4].meta.long_name, None);
        next[4].meta.long_name = Some("Now named".into());
        next[0].bar.adj_close = None;
        for i in [0, 1, 4] {
            next[i].updated_at += stamp;
        }
        next.extend(rows("MSFT", 30, 2));
        let r = wh.load_rows(&ticker("MSFT"), &next, Upsert).await.unwrap();
        assert_eq!(r, report(32, 2, 3, 0));
        assert_eq!(r.rows_loaded(), 5);
        assert_identical(&wh.read_rows(None).await.unwrap(), &next);
        wh.close().await;
    }

    pub async fn append_never_duplicates_nor_modifies(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = rows("MSFT", 0, 30);
        assert_eq!(
            wh.load_rows(&ticker("MSFT"), &msft[..20], Append)
                .await
                .unwrap(),
            report(20, 20, 0, 0)
        );

        // The first 20 come again with other values: skipped, never updated.
        let mut more = later(msft.clone(), TimeDelta::days(1));
        for r in &mut more[..20] {
            r.bar.close += 7.0;
        }
        let tail_as_loaded = more[20..].to_vec();
        assert_eq!(
            wh.load_rows(&ticker("MSFT"), &more, Append).await.unwrap(),
            report(30, 10, 0, 0)
        );
        assert_eq!(
            wh.load_rows(&ticker("MSFT"), &more, Append).await.unwrap(),
            report(30, 0, 0, 0)
        );
        assert_eq!(env.count(TABLE).await, 30);

        let expected: Vec<CuratedRow> = msft[..20].iter().cloned().chain(tail_as_loaded).collect();
        assert_identical(&wh.read_rows(None).await.unwrap(), &expected);
        wh.close().await;
    }

    pub async fn truncate_insert_replaces_only_that_tickers_rows(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = rows("MSFT", 0, 30);
        let aapl = rows("AAPL", 0, 20);
        wh.load_rows(&ticker("MSFT"), &msft, Upsert).await.unwrap();
        wh.load_rows(&ticker("AAPL"), &aapl, Upsert).await.unwrap();

        let replacement = rows("MSFT", 25, 10); // overlaps 5 old dates, 5 new
        let r = wh
            .load_rows(&ticker("MSFT"), &replacement, TruncateInsert)
            .await
            .unwrap();
        assert_eq!(r, report(10, 10, 0, 30));
        assert_identical(
            &wh.read_rows(Some(&ticker("MSFT"))).await.unwrap(),
            &replacement,
        );
        assert_identical(&wh.read_rows(Some(&ticker("AAPL"))).await.unwrap(), &aapl);
        assert_eq!(env.count(TABLE).await, 30);

        // Again: same outcome, idempotent.
        let r = wh
            .load_rows(&ticker("MSFT"), &replacement, TruncateInsert)
            .await
            .unwrap();
        assert_eq!(r, report(10, 10, 0, 10));
        assert_eq!(env.count(TABLE).await, 30);
        wh.close().await;
    }

    pub async fn batch_sizes_give_the_same_table(env: Arc<Env>) {
        let msft = rows("MSFT", 0, 1100); // more than SQLite's 1023 rows per statement
        let mut changed = later(msft.clone(), TimeDelta::hours(1));
        for r in changed.iter_mut().step_by(3) {
            r.indicators.rsi = Some(42.0);
        }
        let updates = changed
            .iter()
            .zip(&msft)
            .filter(|(a, b)| !a.same_values(b))
            .count() as u64;
        let mut expected = msft.clone();
        for (e, c) in expected.iter_mut().zip(&changed) {
            if !e.same_values(c) {
                *e = CuratedRow {
                    created_at: e.created_at,
                    ..c.clone()
                };
            }
        }

        for batch in [1, 7, 1000, 5000] {
            let table = format!("facts_batch_{batch}");
            let wh = env.warehouse_on(&table, batch).await;
            assert_eq!(
                wh.load_rows(&ticker("MSFT"), &msft, Upsert).await.unwrap(),
                report(1100, 1100, 0, 0),
                "batch {batch}"
            );
            let r = wh
                .load_rows(&ticker("MSFT"), &changed, Upsert)
                .await
                .unwrap();
            assert_eq!(r, report(1100, 0, updates, 0), "batch {batch}");
            assert_identical(&wh.read_rows(None).await.unwrap(), &expected);
            assert_eq!(env.count(&table).await, 1100);
            wh.close().await;
        }
    }

    pub async fn failed_load_leaves_the_table_unchanged(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let baseline = rows("MSFT", 0, 300);
        let other = rows("AAPL", 0, 5);
        wh.load_rows(&ticker("MSFT"), &baseline, Upsert)
            .await
            .unwrap();
        wh.load_rows(&ticker("AAPL"), &other, Upsert).await.unwrap();
        let before = wh.read_rows(None).await.unwrap();

        // 2500 rows: updates of the 300 stored ones and 2200 new ones; only the
        // last breaks the limit, so with batches of 1000 the first batches
        // have already been written inside the transaction when it fails.
        let mut incoming = later(rows("MSFT", 0, 2500), TimeDelta::days(1));
        for r in &mut incoming[..300] {
            r.bar.close += 0.5;
        }
        incoming[2499].bar.close = 5000.0;
        let table = env.qualified(TABLE);
        let (add_limit, drop_limit, needle) = match env.db {
            Db::Postgres => (
                format!("ALTER TABLE {table} ADD CONSTRAINT close_limit CHECK (close < 1000)"),
                format!("ALTER TABLE {table} DROP CONSTRAINT close_limit"),
                "close_limit",
            ),
            Db::Sqlite => (
                format!(
                    "CREATE TRIGGER close_limit BEFORE INSERT ON {table} WHEN NEW.close >= 1000 \
                     BEGIN SELECT RAISE(ABORT, 'close limit'); END"
                ),
                "DROP TRIGGER close_limit".to_string(),
                "close limit",
            ),
        };
        env.exec(&add_limit).await;

        for strategy in [Upsert, Append, TruncateInsert] {
            let err = wh
                .load_rows(&ticker("MSFT"), &incoming, strategy)
                .await
                .unwrap_err();
            assert_permanent(err.into(), &["loading MSFT into", needle]);
            assert_eq!(env.count(TABLE).await, 305, "{strategy}");
            assert_identical(&wh.read_rows(None).await.unwrap(), &before);
        }

        // The warehouse (and its pooled connections) still work afterwards.
        env.exec(&drop_limit).await;
        let r = wh
            .load_rows(&ticker("MSFT"), &incoming, Upsert)
            .await
            .unwrap();
        assert_eq!(r, report(2500, 2200, 300, 0));
        assert_eq!(env.count(TABLE).await, 2505);
        wh.close().await;
    }

    pub async fn bad_input_is_rejected_before_touching_the_table(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = ticker("MSFT");

        let mut mixed = rows("MSFT", 0, 5);
        mixed.push(row("AAPL", 5));
        let err = wh.load_rows(&msft, &mixed, Upsert).await.unwrap_err();
        assert_permanent(
            err.into(),
            &["loading MSFT into", "AAPL", "not of ticker MSFT"],
        );

        let mut duplicated = rows("MSFT", 0, 5);
        duplicated.push(row("MSFT", 2));
        let err = wh.load_rows(&msft, &duplicated, Append).await.unwrap_err();
        assert_permanent(err.into(), &["duplicate date 2024-01-04", "MSFT"]);

        let mut nan = rows("MSFT", 0, 5);
        nan[3].indicators.rsi = Some(f64::NAN);
        let err = wh.load_rows(&msft, &nan, TruncateInsert).await.unwrap_err();
        assert_permanent(err.into(), &["rsi is NaN", "2024-01-05"]);

        let mut nul = rows("MSFT", 0, 5);
        nul[1].meta.short_name = Some("nul\0byte".into());
        let err = wh.load_rows(&msft, &nul, Upsert).await.unwrap_err();
        assert_permanent(
            err.into(),
            &["short_name contains a NUL character", "2024-01-03"],
        );

        assert_eq!(env.count(TABLE).await, 0);
        // Nothing to do is not an error.
        assert_eq!(
            wh.load_rows(&msft, &[], Upsert).await.unwrap(),
            report(0, 0, 0, 0)
        );
        wh.close().await;
    }

    pub async fn loads_from_the_lake_partitions(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let msft = ticker("MSFT");
        let y2024 = rows("MSFT", 0, 30);
        let y2025 = rows("MSFT", 400, 10);
        let k2024 = put_partition(&lake, &y2024, 2024).await;
        let k2025 = put_partition(&lake, &y2025, 2025).await;
        let request = |keys: Vec<String>| mdp_core::messages::LoadRequest {
            v: 1,
            run_id: "test".into(),
            ticker: msft.clone(),
            partition_keys: keys,
            rows: 0,
            min_date: None,
            max_date: None,
        };

        let r = load_stage(&lake, wh.as_ref(), &request(vec![k2025.clone()]), Upsert)
            .await
            .unwrap();
        assert_eq!(r, report(10, 10, 0, 0));
        // Repeated keys load once; partitions in year order.
        let keys = vec![k2025.clone(), k2024.clone(), k2025.clone()];
        let r = load_stage(&lake, wh.as_ref(), &request(keys), Append)
            .await
            .unwrap();
        assert_eq!(r, report(40, 30, 0, 0));
        let all: Vec<CuratedRow> = y2024.iter().chain(&y2025).cloned().collect();
        assert_identical(&wh.read_rows(None).await.unwrap(), &all);

        let err = load_stage(
            &lake,
            wh.as_ref(),
            &request(vec![
                "curated/market_data/ticker=AAPL/year=2024/part-0.parquet".into(),
            ]),
            Upsert,
        )
        .await
        .unwrap_err();
        assert_permanent(err, &["is not a curated partition of MSFT"]);

        // truncate_insert loads every partition, whatever the message lists.
        let r = load_stage(&lake, wh.as_ref(), &request(vec![k2025]), TruncateInsert)
            .await
            .unwrap();
        assert_eq!(r, report(40, 40, 0, 40));
        let r = reload_ticker(&lake, wh.as_ref(), &msft, Upsert)
            .await
            .unwrap();
        assert_eq!(r, report(40, 0, 0, 0));
        // An empty lake never wipes the warehouse.
        let empty = Lake::new(Arc::new(LocalStore::new(dir.path().join("none"))));
        let err = reload_ticker(&empty, wh.as_ref(), &msft, TruncateInsert)
            .await
            .unwrap_err();
        assert_permanent(err, &["no curated rows in the lake"]);
        assert_eq!(env.count(TABLE).await, 40);
        wh.close().await;
    }
}

on_every_load_path!(
    the_same_load_twice_at_once_leaves_one_copy,
    load_then_read_gives_back_identical_rows,
    upsert_twice_changes_nothing,
    upsert_rewrites_changed_rows_and_keeps_created_at,
    append_never_duplicates_nor_modifies,
    truncate_insert_replaces_only_that_tickers_rows,
    batch_sizes_give_the_same_table,
    failed_load_leaves_the_table_unchanged,
    bad_input_is_rejected_before_touching_the_table,
    loads_from_the_lake_partitions,
);
