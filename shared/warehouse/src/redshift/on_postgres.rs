//! The staging → target statements of every strategy, run against the local
//! Postgres 15 (`MDP_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`), which has MERGE: a target made
//! by the Postgres migrations in a schema of its own, a staging table filled
//! by binary COPY instead of the `COPY … FROM 's3://…'` lines — the only
//! statements not run here.

use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use mdp_core::row::DailyBar;
use mdp_core::{CuratedRow, Indicators, InstrumentMeta};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

use super::statements::*;
use super::*;
use crate::errors::Failure;
use crate::migrate::migrate_pg;
use crate::port::LoadReport;
use mdp_core::config::{LoadStrategy, WarehouseKind};

const TABLE: &str = "fact_market_data";

fn row(ticker: &str, i: i64) -> CuratedRow {
    let close = 100.0 + i as f64 * 0.1 + (0.1 + 0.2);
    let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
        + TimeDelta::seconds(i)
        + TimeDelta::microseconds(123_456);
    CuratedRow {
        ticker: ticker.into(),
        bar: DailyBar {
            date: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap() + TimeDelta::days(i),
            open: (i % 3 != 1).then_some(close - 0.5),
            high: Some(close + 1.0 / 3.0),
            low: Some(close - 2.0 / 7.0),
            close,
            adj_close: Some(close * 0.98),
            volume: (i % 4 != 2).then_some(1_000_000 + i),
        },
        indicators: Indicators {
            rsi: (i >= 3).then_some(50.0 + 1.0 / 7.0),
            macd: Some(1e-300 * (i as f64 + 1.0)),
            ..Indicators::default()
        },
        meta: InstrumentMeta {
            currency: Some("USD".into()),
            long_name: (i % 5 != 4).then(|| "Ünïcode ✓ 'quoted'".to_string()),
            short_name: Some(format!("{ticker} short")),
            fifty_two_week_high: Some(f64::MAX),
            ..InstrumentMeta::default()
        },
        created_at: at,
        updated_at: at + TimeDelta::microseconds(654_321),
    }
}

fn rows(ticker: &str, first: i64, n: i64) -> Vec<CuratedRow> {
    (first..first + n).map(|i| row(ticker, i)).collect()
}

struct Env {
    /// One connection: every load reuses the session of the one before,
    /// as pooled Redshift sessions are, so a leftover staging table would show.
    pool: PgPool,
    admin: PgPool,
    schema: String,
}

impl Env {
    async fn new() -> Env {
        let url = std::env::var("MDP_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
        let connect = |n| PgPoolOptions::new().max_connections(n).connect(&url);
        let pool = connect(1)
            .await
            .expect("Postgres for tests (MDP_TEST_POSTGRES_URL)");
        let admin = connect(1).await.unwrap();
        let schema = format!("mdp_rs_test_{:016x}", fastrand::u64(..));
        migrate_pg(&pool, WarehouseKind::Postgres, &schema, TABLE)
            .await
            .unwrap();
        Env {
            pool,
            admin,
            schema,
        }
    }

    /// One load: the statements before the COPYs, the rows copied into
    /// the stage by other means, then every statement after the COPYs.
    async fn load(
        &self,
        ticker: &str,
        staged: &[CuratedRow],
        strategy: LoadStrategy,
    ) -> Result<LoadReport, Failure> {
        let uri = format!(
            "s3://bucket/lake/curated/market_data/ticker={ticker}/year=2024/part-0.parquet"
        );
        let statements = load_statements(&self.schema, TABLE, &[uri], "default", strategy, ticker);
        let first_copy = statements
            .iter()
            .position(|s| s.step == Step::CopyFromS3)
            .unwrap();
        assert_eq!(statements[first_copy + 1].step, Step::CheckStage);
        let (before, after) = (&statements[..first_copy], &statements[first_copy + 1..]);
        assert!(after.iter().all(|s| s.step != Step::CopyFromS3));

        let mut tx = self.pool.begin().await?;
        let result = async {
            run(&mut tx, before).await?;
            postgres::copy_rows(&mut tx, STAGE, staged, 100).await?;
            run(&mut tx, after).await
        }
        .await;
        match result {
            Ok(report) => {
                tx.commit().await?;
                Ok(report)
            }
            Err(e) => {
                tx.rollback().await?;
                Err(e)
            }
        }
    }

    async fn read(&self, ticker: Option<&str>) -> Vec<CuratedRow> {
        postgres::read_rows(&self.admin, &self.schema, TABLE, ticker)
            .await
            .unwrap()
    }

    async fn exec(&self, sql: &str) {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&self.admin)
            .await
            .unwrap();
    }

    async fn cleanup(&self) {
        self.exec(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema
        ))
        .await;
        self.pool.close().await;
        self.admin.close().await;
    }
}

fn report(rows_in: usize, inserted: u64, updated: u64, deleted: u64) -> LoadReport {
    LoadReport {
        rows_in,
        inserted,
        updated,
        deleted,
    }
}

fn assert_rows(actual: &[CuratedRow], expected: &[CuratedRow]) {
    assert_eq!(actual.len(), expected.len(), "row count");
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a, e);
        assert!(
            a.same_values(e),
            "bit-exact values of {} {}",
            a.ticker,
            a.date()
        );
    }
}

fn later(mut rows: Vec<CuratedRow>, by: TimeDelta) -> Vec<CuratedRow> {
    for r in &mut rows {
        r.updated_at += by;
    }
    rows
}

#[tokio::test]
async fn every_strategy_after_the_copy_runs_on_postgres() {
    let env = std::sync::Arc::new(Env::new().await);
    // Spawned, so a failed assertion still drops the schema below.
    let outcome = tokio::spawn(scenario(env.clone())).await;
    env.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn scenario(env: std::sync::Arc<Env>) {
    let other = rows("KEEP", 0, 4);
    assert_eq!(
        env.load("KEEP", &other, LoadStrategy::Upsert)
            .await
            .unwrap(),
        report(4, 4, 0, 0)
    );

    // Upsert: all new, then the same values again (nothing rewritten, the
    // stored updated_at stays), then 2 changed and 3 new.
    let msft = rows("MSFT", 0, 10);
    assert_eq!(
        env.load("MSFT", &msft, LoadStrategy::Upsert).await.unwrap(),
        report(10, 10, 0, 0)
    );
    let again = later(msft.clone(), TimeDelta::days(1));
    assert_eq!(
        env.load("MSFT", &again, LoadStrategy::Upsert)
            .await
            .unwrap(),
        report(10, 0, 0, 0)
    );
    assert_rows(&env.read(Some("MSFT")).await, &msft);

    let mut changed = later(rows("MSFT", 0, 13), TimeDelta::days(2));
    changed[1].bar.open = Some(42.0); // NULL -> value
    changed[5].meta.long_name = None; // value -> NULL
    for r in &mut changed {
        r.created_at += TimeDelta::days(9); // never replaces a stored created_at
    }
    assert_eq!(
        env.load("MSFT", &changed, LoadStrategy::Upsert)
            .await
            .unwrap(),
        report(13, 3, 2, 0)
    );
    let mut expected = msft.clone();
    for i in [1, 5] {
        expected[i] = CuratedRow {
            created_at: msft[i].created_at,
            ..changed[i].clone()
        };
    }
    expected.extend(changed[10..].iter().cloned());
    assert_rows(&env.read(Some("MSFT")).await, &expected);

    // Append: existing keys skipped (even with other values), new ones inserted.
    let mut appended = later(rows("MSFT", 8, 7), TimeDelta::days(3));
    for r in &mut appended {
        r.bar.close += 7.0;
    }
    assert_eq!(
        env.load("MSFT", &appended, LoadStrategy::Append)
            .await
            .unwrap(),
        report(7, 2, 0, 0)
    );
    expected.extend(appended[5..].iter().cloned());
    assert_rows(&env.read(Some("MSFT")).await, &expected);

    // Truncate_insert: the ticker's 15 rows replaced by 4; KEEP untouched.
    let replacement = rows("MSFT", 20, 4);
    assert_eq!(
        env.load("MSFT", &replacement, LoadStrategy::TruncateInsert)
            .await
            .unwrap(),
        report(4, 4, 0, 15)
    );
    assert_rows(&env.read(Some("MSFT")).await, &replacement);
    assert_rows(&env.read(Some("KEEP")).await, &other);

    // Staged rows of another ticker, or two of one date: refused, nothing written.
    let before = env.read(None).await;
    let mut foreign = rows("MSFT", 30, 3);
    foreign.push(row("AAPL", 40));
    let mut twice = rows("MSFT", 30, 3);
    twice.push(row("MSFT", 31));
    for strategy in [
        LoadStrategy::Upsert,
        LoadStrategy::Append,
        LoadStrategy::TruncateInsert,
    ] {
        match env.load("MSFT", &foreign, strategy).await {
            Err(Failure::Data(why)) => {
                assert!(why.contains("1 rows of another ticker"), "{why}")
            }
            other => panic!("{strategy}: {other:?}"),
        }
        match env.load("MSFT", &twice, strategy).await {
            Err(Failure::Data(why)) => assert!(why.contains("4 rows for 3 dates"), "{why}"),
            other => panic!("{strategy}: {other:?}"),
        }
    }
    assert_rows(&env.read(None).await, &before);

    // A failure in the statement after the staging (a trigger refusing
    // one row) rolls everything back, for every strategy; the session's
    // staging table goes with it, so the next load works.
    let target = format!("\"{}\".\"{TABLE}\"", env.schema);
    env.exec(&format!(
        "CREATE FUNCTION \"{0}\".refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.\"date\" = DATE '2024-01-26' THEN RAISE EXCEPTION 'refused row %', NEW.\"date\"; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {target} FOR EACH ROW EXECUTE FUNCTION \"{0}\".refuse()",
        env.schema
    ))
    .await;
    let mut incoming = later(rows("MSFT", 20, 5), TimeDelta::days(5)); // day 24 (2024-01-26) is new
    incoming[0].bar.close += 1.0;
    for strategy in [
        LoadStrategy::Upsert,
        LoadStrategy::Append,
        LoadStrategy::TruncateInsert,
    ] {
        match env.load("MSFT", &incoming, strategy).await {
            Err(Failure::Db(e)) => {
                assert!(e.to_string().contains("refused row 2024-01-26"), "{e}")
            }
            other => panic!("{strategy}: {other:?}"),
        }
        assert_rows(&env.read(None).await, &before);
    }
    env.exec(&format!("DROP TRIGGER refuse ON {target}")).await;
    assert_eq!(
        env.load("MSFT", &incoming, LoadStrategy::Upsert)
            .await
            .unwrap(),
        report(5, 1, 1, 0)
    );
}

/// The Redshift side load ([`super::side::run`]: the LOCK, the read through
/// the simple query protocol, the literal statements) on Postgres, step by
/// step against the in-memory warehouse: same reports, same rows bit for
/// bit; and a failing statement rolls back all three tables.
#[tokio::test]
async fn side_loads_run_on_postgres() {
    let env = std::sync::Arc::new(Env::new().await);
    let outcome = tokio::spawn(side_scenario(env.clone())).await;
    env.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn side_scenario(env: std::sync::Arc<Env>) {
    use crate::port::{RowWarehouse, WarehouseLoader};
    use crate::side::{SideBatch, SideRows};
    use crate::{MemoryWarehouse, postgres::side::read_side_in};
    use mdp_core::Ticker;
    use mdp_core::quality::*;

    let day = |i: i64| NaiveDate::from_ymd_opt(2024, 1, 2).unwrap() + TimeDelta::days(i);
    let at = |h: i64| {
        Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
            + TimeDelta::hours(h)
            + TimeDelta::nanoseconds(123_456_789) // microseconds are kept
    };
    let action = |i, kind, amount, numerator, denominator| CorporateAction {
        date: day(i),
        kind,
        amount,
        numerator,
        denominator,
    };
    let mut actions = vec![
        action(1, ActionKind::Dividend, Some(0.205), None, None),
        action(2, ActionKind::Split, None, Some(1.0), Some(3.0)),
        action(2, ActionKind::Dividend, Some(5e-324), None, None),
        action(3, ActionKind::Dividend, Some(f64::MAX), None, None),
    ];
    let mut findings = vec![
        QualityFinding {
            date: day(1),
            rule: SoftRule::LargeMove,
            detail: "it's \\ a ✓ move".into(),
        },
        QualityFinding {
            date: day(4),
            rule: SoftRule::StalePrice,
            detail: "stale".into(),
        },
    ];
    let bar = |i, raw_key: &str, close| QuarantinedBar {
        bar: DailyBar {
            date: day(i),
            open: Some(1.0 / 3.0),
            high: None,
            low: Some(0.1 + 0.2),
            close,
            adj_close: None,
            volume: Some(i64::MIN),
        },
        rules: vec![HardRule::PriceNotPositive, HardRule::DuplicateDate],
        detail: "close \\ -1".into(),
        raw_key: raw_key.into(),
        quarantined_at: at(-1),
    };
    let mut quarantine = vec![bar(5, "raw/a.json", -1.0), bar(5, "raw/b'.json", -0.5)];

    let memory = MemoryWarehouse::new();
    let t = Ticker::parse("BRK-B").unwrap();
    let read = || async {
        let mut conn = env.admin.acquire().await.unwrap();
        read_side_in(&mut conn, WarehouseKind::Postgres, &env.schema, "BRK-B")
            .await
            .unwrap()
    };
    let bits = |rows: &SideRows| {
        let mut out = Vec::new();
        for a in &rows.actions {
            out.extend([
                a.action.amount,
                a.action.numerator,
                a.action.denominator,
                a.ratio,
            ]);
        }
        for q in &rows.quarantine {
            out.extend([
                q.bar.open,
                q.bar.high,
                q.bar.low,
                Some(q.bar.close),
                q.bar.adj_close,
            ]);
        }
        out.into_iter()
            .map(|v| v.map(f64::to_bits))
            .collect::<Vec<_>>()
    };
    let step = |strategy: LoadStrategy,
                h: i64,
                a: Vec<CorporateAction>,
                f: Vec<QualityFinding>,
                q: Vec<QuarantinedBar>| {
        let env = env.clone();
        let memory = &memory;
        let t = &t;
        async move {
            let batch = SideBatch {
                ticker: t,
                actions: &a,
                findings: &f,
                quarantine: &q,
                now: at(h),
            };
            let expected = memory.load_side(&batch, strategy).await.unwrap();
            let mut tx = env.pool.begin().await.unwrap();
            let got = super::side::run(&mut tx, &env.schema, &batch, strategy)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(got, expected, "{strategy} at {h}");
            memory.read_side(t).await.unwrap()
        }
    };

    for (h, strategy) in [
        (0, LoadStrategy::Upsert),
        (1, LoadStrategy::Upsert),
        (2, LoadStrategy::Append),
        (3, LoadStrategy::TruncateInsert),
    ] {
        let want = step(
            strategy,
            h,
            actions.clone(),
            findings.clone(),
            quarantine.clone(),
        )
        .await;
        let got = read().await;
        assert_eq!(got, want);
        assert_eq!(bits(&got), bits(&want));
    }
    // Changes of every kind, per strategy.
    actions[0].amount = Some(0.21);
    actions.remove(3);
    actions.push(action(9, ActionKind::Split, None, Some(4.0), Some(1.0)));
    findings.remove(0);
    findings[0].detail = "stale again".into();
    quarantine[1].detail = "changed".into();
    quarantine.remove(0);
    for (h, strategy) in [
        (4, LoadStrategy::Append),
        (5, LoadStrategy::Upsert),
        (6, LoadStrategy::TruncateInsert),
    ] {
        let want = step(
            strategy,
            h,
            actions.clone(),
            findings.clone(),
            quarantine.clone(),
        )
        .await;
        let got = read().await;
        assert_eq!(got, want, "{strategy}");
        assert_eq!(bits(&got), bits(&want));
    }
    assert_eq!(read().await.quarantine.len(), 2, "never deleted");

    // A refused insert (the last statement) rolls back the deletes and
    // inserts before it.
    let before = read().await;
    let quarantine_table = format!("\"{}\".\"quality_quarantine\"", env.schema);
    env.exec(&format!(
        "CREATE FUNCTION \"{0}\".refuse_side() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused side row'; END $$; \
         CREATE TRIGGER refuse_side BEFORE INSERT ON {quarantine_table} \
         FOR EACH ROW EXECUTE FUNCTION \"{0}\".refuse_side()",
        env.schema
    ))
    .await;
    let changed_actions = vec![action(1, ActionKind::Dividend, Some(9.0), None, None)];
    let new_bar = vec![bar(7, "raw/c.json", -2.0)];
    let batch = SideBatch {
        ticker: &t,
        actions: &changed_actions,
        findings: &[],
        quarantine: &new_bar,
        now: at(7),
    };
    let mut tx = env.pool.begin().await.unwrap();
    match super::side::run(&mut tx, &env.schema, &batch, LoadStrategy::TruncateInsert).await {
        Err(Failure::Db(e)) => assert!(e.to_string().contains("refused side row"), "{e}"),
        other => panic!("{other:?}"),
    }
    tx.rollback().await.unwrap();
    assert_eq!(read().await, before);
}
