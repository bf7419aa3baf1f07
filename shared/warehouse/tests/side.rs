//! The side tables (corporate actions, quality findings, quarantined bars)
//! on SQLite, Postgres and in memory: each strategy's semantics, twice ==
//! once (timestamps included), one transaction for the three tables,
//! concurrent loads of a ticker, floats bit for bit, and the migrations
//! that create the tables (also on an up-to-date schema someone damaged).

mod common;

use common::*;
use mdp_core::quality::{
    ActionKind, CorporateAction, HardRule, QualityFinding, QuarantinedBar, SoftRule,
};
use mdp_warehouse::{MemoryWarehouse, SideBatch, SideReport, SideRows};

/// What a test loads: owned, so a scenario can change it between loads.
#[derive(Clone, Default)]
struct Side {
    actions: Vec<CorporateAction>,
    findings: Vec<QualityFinding>,
    quarantine: Vec<QuarantinedBar>,
}

impl Side {
    fn batch<'a>(&'a self, ticker: &'a Ticker, now: DateTime<Utc>) -> SideBatch<'a> {
        SideBatch {
            ticker,
            actions: &self.actions,
            findings: &self.findings,
            quarantine: &self.quarantine,
            now,
        }
    }
}

fn dividend(i: usize, amount: f64) -> CorporateAction {
    CorporateAction {
        date: day(i),
        kind: ActionKind::Dividend,
        amount: Some(amount),
        numerator: None,
        denominator: None,
    }
}

fn split(i: usize, numerator: f64, denominator: f64) -> CorporateAction {
    CorporateAction {
        date: day(i),
        kind: ActionKind::Split,
        amount: None,
        numerator: Some(numerator),
        denominator: Some(denominator),
    }
}

fn finding(i: usize, rule: SoftRule, detail: &str) -> QualityFinding {
    QualityFinding {
        date: day(i),
        rule,
        detail: detail.to_string(),
    }
}

fn quarantined(i: usize, raw_key: &str, close: f64) -> QuarantinedBar {
    QuarantinedBar {
        bar: DailyBar {
            date: day(i),
            open: Some(1.0 / 3.0),
            high: None,
            low: Some(0.205),
            close,
            adj_close: None,
            volume: Some(-17),
        },
        rules: vec![HardRule::PriceNotPositive, HardRule::NegativeVolume],
        detail: format!("close {close} is not > 0; \"quoted\" 'and' \\ ✓"),
        raw_key: raw_key.to_string(),
        quarantined_at: base_time() + TimeDelta::microseconds(123_456),
    }
}

/// A ticker's usual side data: two dividends (one on a split day), a split,
/// two findings, a quarantined bar.
fn usual() -> Side {
    Side {
        actions: vec![
            dividend(1, 0.205),
            split(3, 4.0, 1.0),
            dividend(3, 0.24),
            dividend(40, 1.0 / 3.0),
        ],
        findings: vec![
            finding(2, SoftRule::LargeMove, "close 250.0 after 2.5: ×100.0"),
            finding(2, SoftRule::UnitJump, "×100"),
            finding(9, SoftRule::StalePrice, "same as 2024-01-10"),
        ],
        quarantine: vec![quarantined(5, "raw/yahoo/chart/ticker=X/a.json", -1.0)],
    }
}

/// The load times: whole microseconds, as the tables keep them.
fn at(n: i64) -> DateTime<Utc> {
    base_time() + TimeDelta::hours(n) + TimeDelta::microseconds(654_321)
}

fn side_report(actions: LoadReport, findings: LoadReport, quarantine: LoadReport) -> SideReport {
    SideReport {
        actions,
        findings,
        quarantine,
    }
}

/// The stored rows of `side` loaded once into an empty table at `now`.
fn stored(side: &Side, now: DateTime<Utc>) -> SideRows {
    let mut actions: Vec<mdp_warehouse::StoredAction> = side
        .actions
        .iter()
        .map(|a| mdp_warehouse::StoredAction {
            action: a.clone(),
            ratio: a.ratio(),
            created_at: now,
            updated_at: now,
        })
        .collect();
    actions.sort_by_key(|s| (s.action.date, s.action.kind.code()));
    let mut findings: Vec<mdp_warehouse::StoredFinding> = side
        .findings
        .iter()
        .map(|f| mdp_warehouse::StoredFinding {
            finding: f.clone(),
            recorded_at: now,
        })
        .collect();
    findings.sort_by_key(|s| (s.finding.date, s.finding.rule.code()));
    let mut quarantine = side.quarantine.clone();
    quarantine.sort_by_key(|q| (q.bar.date, q.raw_key.clone()));
    SideRows {
        actions,
        findings,
        quarantine,
    }
}

/// Same rows, floats bit for bit, timestamps to the microsecond.
fn assert_same(actual: &SideRows, expected: &SideRows) {
    assert_eq!(actual, expected);
    let bits = |v: Option<f64>| v.map(f64::to_bits);
    for (a, e) in actual.actions.iter().zip(&expected.actions) {
        assert_eq!(bits(a.action.amount), bits(e.action.amount));
        assert_eq!(bits(a.action.numerator), bits(e.action.numerator));
        assert_eq!(bits(a.action.denominator), bits(e.action.denominator));
        assert_eq!(bits(a.ratio), bits(e.ratio));
    }
    for (a, e) in actual.quarantine.iter().zip(&expected.quarantine) {
        for (x, y) in [
            (a.bar.open, e.bar.open),
            (a.bar.high, e.bar.high),
            (a.bar.low, e.bar.low),
            (Some(a.bar.close), Some(e.bar.close)),
            (a.bar.adj_close, e.bar.adj_close),
        ] {
            assert_eq!(bits(x), bits(y));
        }
    }
}

/// The semantics, on any warehouse that reads back (memory included).
mod semantics {
    use super::*;

    /// Upsert: new keys inserted, changed values rewritten (created_at kept,
    /// updated_at the load's), identical ones left alone; append: new keys
    /// only; the same batch again changes nothing, timestamps included.
    pub async fn upsert_and_append(wh: Arc<dyn RowWarehouse>) {
        let t = ticker("MSFT");
        let side = usual();
        let first = wh.load_side(&side.batch(&t, at(0)), Upsert).await.unwrap();
        assert_eq!(
            first,
            side_report(report(4, 4, 0, 0), report(3, 3, 0, 0), report(1, 1, 0, 0))
        );
        let once = stored(&side, at(0));
        assert_same(&wh.read_side(&t).await.unwrap(), &once);

        // Again, also later: nothing written, for every strategy.
        for (n, strategy) in strategy_names().into_iter().enumerate() {
            let again = wh
                .load_side(&side.batch(&t, at(1 + n as i64)), strategy)
                .await
                .unwrap();
            assert_eq!(
                again,
                side_report(report(4, 0, 0, 0), report(3, 0, 0, 0), report(1, 0, 0, 0)),
                "{strategy}"
            );
            assert_same(&wh.read_side(&t).await.unwrap(), &once);
        }

        // A changed dividend amount and a new one: append inserts only the new one.
        let mut changed = side.clone();
        changed.actions[0].amount = Some(0.21);
        changed.actions.push(dividend(60, 0.25));
        let appended = wh
            .load_side(&changed.batch(&t, at(5)), Append)
            .await
            .unwrap();
        assert_eq!(appended.actions, report(5, 1, 0, 0));
        let mut expected = once.clone();
        expected.actions.push(mdp_warehouse::StoredAction {
            action: dividend(60, 0.25),
            ratio: None,
            created_at: at(5),
            updated_at: at(5),
        });
        assert_same(&wh.read_side(&t).await.unwrap(), &expected);

        // Upsert rewrites it, keeping its created_at.
        let upserted = wh
            .load_side(&changed.batch(&t, at(6)), Upsert)
            .await
            .unwrap();
        assert_eq!(upserted.actions, report(5, 0, 1, 0));
        expected.actions[0].action.amount = Some(0.21);
        expected.actions[0].updated_at = at(6);
        assert_same(&wh.read_side(&t).await.unwrap(), &expected);

        // A split's ratio follows its numerator and denominator.
        let mut resplit = changed.clone();
        resplit.actions[1] = split(3, 1.0, 10.0);
        let r = wh
            .load_side(&resplit.batch(&t, at(7)), Upsert)
            .await
            .unwrap();
        assert_eq!(r.actions, report(5, 0, 1, 0));
        let back = wh.read_side(&t).await.unwrap();
        let stored_split = back
            .actions
            .iter()
            .find(|a| a.action.kind == ActionKind::Split)
            .unwrap();
        assert_eq!(stored_split.ratio.map(f64::to_bits), Some(0.1f64.to_bits()));
        assert_eq!(
            (stored_split.created_at, stored_split.updated_at),
            (at(0), at(7))
        );
    }

    /// Truncate_insert: the ticker's actions become the batch (unchanged rows
    /// keep their timestamps); other tickers untouched; an empty set empties.
    pub async fn truncate_insert_replaces_the_actions(wh: Arc<dyn RowWarehouse>) {
        let (t, keep) = (ticker("AAPL"), ticker("KEEP"));
        let side = usual();
        wh.load_side(&side.batch(&t, at(0)), Upsert).await.unwrap();
        wh.load_side(&side.batch(&keep, at(0)), Upsert)
            .await
            .unwrap();

        let mut next = side.clone();
        next.actions.remove(3); // gone
        next.actions[0].amount = Some(0.2050000001); // changed
        next.actions.push(split(70, 3.0, 2.0)); // new
        let r = wh
            .load_side(&next.batch(&t, at(1)), TruncateInsert)
            .await
            .unwrap();
        assert_eq!(r.actions, report(4, 1, 1, 1));
        let back = wh.read_side(&t).await.unwrap();
        let mut expected = stored(&next, at(0));
        for a in &mut expected.actions {
            if a.action.date == day(1) {
                a.updated_at = at(1);
            }
            if a.action.date == day(70) {
                (a.created_at, a.updated_at) = (at(1), at(1));
            }
        }
        assert_same(&back, &expected);
        assert_same(&wh.read_side(&keep).await.unwrap(), &stored(&side, at(0)));

        let empty = Side {
            actions: vec![],
            ..next.clone()
        };
        let r = wh
            .load_side(&empty.batch(&t, at(2)), TruncateInsert)
            .await
            .unwrap();
        assert_eq!(r.actions, report(0, 0, 0, 4));
        assert!(wh.read_side(&t).await.unwrap().actions.is_empty());
        // Upsert and append never delete an action.
        wh.load_side(&side.batch(&t, at(3)), Upsert).await.unwrap();
        for strategy in [Upsert, Append] {
            let r = wh
                .load_side(&empty.batch(&t, at(4)), strategy)
                .await
                .unwrap();
            assert_eq!(r.actions, report(0, 0, 0, 0));
            assert_eq!(wh.read_side(&t).await.unwrap().actions.len(), 4);
        }
        assert_same(&wh.read_side(&keep).await.unwrap(), &stored(&side, at(0)));
    }

    /// Findings become exactly the batch whatever the strategy: a finding
    /// that disappeared is deleted, a changed detail rewritten (recorded_at
    /// the load's), other tickers' findings untouched.
    pub async fn findings_become_the_batch(wh: Arc<dyn RowWarehouse>) {
        let (t, keep) = (ticker("^GSPC"), ticker("KEEP"));
        let side = usual();
        wh.load_side(&side.batch(&keep, at(0)), Upsert)
            .await
            .unwrap();
        for (n, strategy) in strategy_names().into_iter().enumerate() {
            let n = 10 * n as i64;
            wh.load_side(&side.batch(&t, at(n)), strategy)
                .await
                .unwrap();
            let mut next = side.clone();
            next.findings.remove(1); // unit_jump gone
            next.findings[1].detail = "same as 2024-01-10, again".into();
            next.findings
                .push(finding(30, SoftRule::MissingSession, "no bar"));
            let r = wh
                .load_side(&next.batch(&t, at(n + 1)), strategy)
                .await
                .unwrap();
            assert_eq!(r.findings, report(3, 1, 1, 1), "{strategy}");
            let back = wh.read_side(&t).await.unwrap();
            let rules: Vec<(NaiveDate, SoftRule, DateTime<Utc>)> = back
                .findings
                .iter()
                .map(|f| (f.finding.date, f.finding.rule, f.recorded_at))
                .collect();
            assert_eq!(
                rules,
                [
                    (day(2), SoftRule::LargeMove, at(n)),
                    (day(9), SoftRule::StalePrice, at(n + 1)),
                    (day(30), SoftRule::MissingSession, at(n + 1)),
                ],
                "{strategy}"
            );
            assert_eq!(back.findings[1].finding.detail, "same as 2024-01-10, again");
            // No finding at all: none left.
            let clean = Side {
                findings: vec![],
                ..next.clone()
            };
            let r = wh
                .load_side(&clean.batch(&t, at(n + 2)), strategy)
                .await
                .unwrap();
            assert_eq!(r.findings, report(0, 0, 0, 3));
            assert!(wh.read_side(&t).await.unwrap().findings.is_empty());
        }
        assert_same(&wh.read_side(&keep).await.unwrap(), &stored(&side, at(0)));
    }

    /// Quarantined bars are upserted on (date, raw_key) and never deleted.
    pub async fn quarantine_is_upserted_never_deleted(wh: Arc<dyn RowWarehouse>) {
        let t = ticker("BRK-B");
        let mut side = usual();
        side.quarantine
            .push(quarantined(5, "raw/yahoo/chart/ticker=X/b.json", -2.0));
        side.quarantine
            .push(quarantined(6, "raw/yahoo/chart/ticker=X/a.json", 0.0));
        wh.load_side(&side.batch(&t, at(0)), Upsert).await.unwrap();
        for strategy in strategy_names() {
            let mut next = side.clone();
            next.quarantine.remove(0);
            next.quarantine[0].detail = format!("changed by {strategy}");
            next.quarantine[0].rules = vec![HardRule::DuplicateDate];
            let r = wh
                .load_side(&next.batch(&t, at(1)), strategy)
                .await
                .unwrap();
            assert_eq!(r.quarantine, report(2, 0, 1, 0), "{strategy}");
            let back = wh.read_side(&t).await.unwrap().quarantine;
            assert_eq!(back.len(), 3, "{strategy}");
            assert_eq!(back[0], side.quarantine[0], "never deleted");
            assert_eq!(back[1], next.quarantine[0]);
            assert_eq!(back[1].rules, vec![HardRule::DuplicateDate]);
        }
    }

    /// Values that only survive a bit-exact round trip.
    pub async fn floats_are_bit_exact(wh: Arc<dyn RowWarehouse>) {
        let t = ticker("EURUSD=X");
        let mut q = quarantined(1, "raw/k.json", f64::MIN_POSITIVE);
        q.bar.high = Some(f64::MAX);
        q.bar.adj_close = Some(5e-324);
        q.bar.volume = Some(i64::MIN);
        let side = Side {
            actions: vec![
                dividend(1, 0.205),
                dividend(2, 0.1 + 0.2),
                dividend(3, 1e-300),
                split(4, 1.0, 3.0),
                split(5, 7.0, 0.1 + 0.2),
            ],
            findings: vec![],
            quarantine: vec![q],
        };
        wh.load_side(&side.batch(&t, at(0)), Upsert).await.unwrap();
        let back = wh.read_side(&t).await.unwrap();
        assert_same(&back, &stored(&side, at(0)));
        assert_eq!(
            back.actions[3].ratio.map(f64::to_bits),
            Some((1.0f64 / 3.0).to_bits())
        );
        // Reloaded: compared bit for bit, so nothing is rewritten.
        let again = wh.load_side(&side.batch(&t, at(1)), Upsert).await.unwrap();
        assert_eq!(
            again,
            side_report(report(5, 0, 0, 0), report(0, 0, 0, 0), report(1, 0, 0, 0))
        );
    }

    /// A bad batch is refused (a permanent error) and changes nothing.
    pub async fn bad_batches_are_refused(wh: Arc<dyn RowWarehouse>) {
        let t = ticker("MSFT");
        let side = usual();
        wh.load_side(&side.batch(&t, at(0)), Upsert).await.unwrap();
        let mut nan = side.clone();
        nan.actions.push(dividend(80, f64::NAN));
        let mut twice = side.clone();
        twice.findings.push(side.findings[0].clone());
        for (bad, needle) in [
            (nan, "amount is NaN"),
            (twice, "two large_move findings on 2024-01-04"),
        ] {
            let err = wh
                .load_side(&bad.batch(&t, at(1)), Upsert)
                .await
                .unwrap_err();
            assert_permanent(err.into(), &[needle]);
            assert_same(&wh.read_side(&t).await.unwrap(), &stored(&side, at(0)));
        }
    }

    /// SQS may deliver one load twice at once: both succeed, the tables
    /// hold one copy.
    pub async fn the_same_load_twice_at_once_is_once(wh: Arc<dyn RowWarehouse>) {
        for (n, strategy) in strategy_names().into_iter().enumerate() {
            let t = ticker(&format!("DUP{n}"));
            let mut side = usual();
            for i in 0..100 {
                side.actions.push(dividend(100 + i, i as f64 / 7.0));
                side.findings
                    .push(finding(100 + i, SoftRule::StalePrice, "stale"));
            }
            let batch = side.batch(&t, at(0));
            let (a, b) = tokio::join!(
                wh.load_side(&batch, strategy),
                wh.load_side(&batch, strategy)
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(
                a.actions.inserted + b.actions.inserted,
                104,
                "{strategy}: {a:?} {b:?}"
            );
            assert_same(&wh.read_side(&t).await.unwrap(), &stored(&side, at(0)));
        }
    }
}

/// Each semantic scenario on SQLite, Postgres and in memory.
macro_rules! on_every_warehouse {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                run(Db::Sqlite, |env: Arc<Env>| async move {
                    let wh = env.warehouse(1000).await;
                    semantics::$scenario(wh.clone()).await;
                    wh.close().await;
                })
                .await;
            }

            #[tokio::test]
            async fn postgres() {
                run(Db::Postgres, |env: Arc<Env>| async move {
                    let wh = env.warehouse(1000).await;
                    semantics::$scenario(wh.clone()).await;
                    wh.close().await;
                })
                .await;
            }

            #[tokio::test]
            async fn memory() {
                semantics::$scenario(Arc::new(MemoryWarehouse::new())).await;
            }
        }
    )*};
}

on_every_warehouse!(
    upsert_and_append,
    truncate_insert_replaces_the_actions,
    findings_become_the_batch,
    quarantine_is_upserted_never_deleted,
    floats_are_bit_exact,
    bad_batches_are_refused,
    the_same_load_twice_at_once_is_once,
);

mod scenarios {
    use super::*;

    /// A statement failing after others have written (a trigger refusing
    /// the quarantine insert, the last write) leaves all three tables as
    /// they were, for every strategy; so does a side table dropped between
    /// migrate and the load.
    pub async fn a_failing_load_changes_no_table(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let t = ticker("MSFT");
        let side = usual();
        wh.load_side(&side.batch(&t, at(0)), Upsert).await.unwrap();
        let before = wh.read_side(&t).await.unwrap();

        let quarantine = env.qualified("quality_quarantine");
        match env.db {
            Db::Sqlite => {
                env.exec(&format!(
                    "CREATE TRIGGER refuse BEFORE INSERT ON {quarantine} \
                     BEGIN SELECT RAISE(ABORT, 'refused quarantined bar'); END"
                ))
                .await
            }
            Db::Postgres => {
                env.exec(&format!(
                    "CREATE FUNCTION \"{0}\".refuse() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'refused quarantined bar'; END $$; \
                     CREATE TRIGGER refuse BEFORE INSERT ON {quarantine} \
                     FOR EACH ROW EXECUTE FUNCTION \"{0}\".refuse()",
                    env.schema
                ))
                .await
            }
        }
        // Every table has something to write: a changed and a new action, a
        // finding gone and one new, a new quarantined bar.
        let mut next = side.clone();
        next.actions[0].amount = Some(0.5);
        next.actions.push(dividend(90, 0.3));
        next.findings.remove(0);
        next.findings
            .push(finding(90, SoftRule::BarOnClosedDay, "a Sunday"));
        next.quarantine
            .push(quarantined(90, "raw/yahoo/chart/ticker=MSFT/c.json", -3.0));
        for strategy in strategy_names() {
            let err = wh
                .load_side(&next.batch(&t, at(1)), strategy)
                .await
                .unwrap_err();
            assert_permanent(
                err.into(),
                &["loading the side data of MSFT", "refused quarantined bar"],
            );
            assert_same(&wh.read_side(&t).await.unwrap(), &before);
        }
        env.exec(&format!(
            "DROP TRIGGER refuse{}",
            match env.db {
                Db::Sqlite => String::new(),
                Db::Postgres => format!(" ON {quarantine}"),
            }
        ))
        .await;
        let r = wh.load_side(&next.batch(&t, at(1)), Upsert).await.unwrap();
        assert_eq!(
            r,
            side_report(report(5, 1, 1, 0), report(3, 1, 0, 1), report(2, 1, 0, 0))
        );

        // A table dropped between migrate and the load: an error, nothing written.
        let after = wh.read_side(&t).await.unwrap();
        env.exec(&format!("DROP TABLE {quarantine}")).await;
        let err = wh
            .load_side(&usual().batch(&t, at(2)), TruncateInsert)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
        let count = |table: &'static str| {
            let env = env.clone();
            async move { env.count(table).await }
        };
        assert_eq!(
            count("fact_corporate_actions").await as usize,
            after.actions.len()
        );
        assert_eq!(
            count("quality_findings").await as usize,
            after.findings.len()
        );
        // The next migrate creates it again.
        wh.migrate().await.unwrap();
        assert_eq!(count("quality_quarantine").await, 0);
        wh.load_side(&next.batch(&t, at(3)), Upsert).await.unwrap();
        assert_eq!(count("quality_quarantine").await, 2);
        wh.close().await;
    }

    /// The migration creates the three tables with their columns and types.
    pub async fn migrate_creates_the_side_tables(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        wh.migrate().await.unwrap();
        // (column, SQLite type, Postgres type) of each table, in order.
        type Columns = &'static [(&'static str, &'static str, &'static str)];
        let expected: [(&str, Columns); 3] = [
            (
                "fact_corporate_actions",
                &[
                    ("ticker", "text", "character varying"),
                    ("date", "text", "date"),
                    ("kind", "text", "character varying"),
                    ("amount", "real", "double precision"),
                    ("ratio", "real", "double precision"),
                    ("numerator", "real", "double precision"),
                    ("denominator", "real", "double precision"),
                    ("created_at", "text", "timestamp with time zone"),
                    ("updated_at", "text", "timestamp with time zone"),
                ],
            ),
            (
                "quality_quarantine",
                &[
                    ("ticker", "text", "character varying"),
                    ("date", "text", "date"),
                    ("raw_key", "text", "text"),
                    ("rules", "text", "text"),
                    ("detail", "text", "text"),
                    ("open", "real", "double precision"),
                    ("high", "real", "double precision"),
                    ("low", "real", "double precision"),
                    ("close", "real", "double precision"),
                    ("adj_close", "real", "double precision"),
                    ("volume", "integer", "bigint"),
                    ("quarantined_at", "text", "timestamp with time zone"),
                ],
            ),
            (
                "quality_findings",
                &[
                    ("ticker", "text", "character varying"),
                    ("date", "text", "date"),
                    ("rule", "text", "character varying"),
                    ("detail", "text", "text"),
                    ("recorded_at", "text", "timestamp with time zone"),
                ],
            ),
        ];
        for (table, columns) in expected {
            let want: Vec<(String, String)> = columns
                .iter()
                .map(|(n, sqlite, pg)| {
                    let ty = if env.db == Db::Sqlite { sqlite } else { pg };
                    (n.to_string(), ty.to_string())
                })
                .collect();
            let got: Vec<(String, String)> = env
                .columns(table)
                .await
                .into_iter()
                .map(|(n, t)| (n, t.to_lowercase()))
                .collect();
            assert_eq!(got, want, "{table}");
        }
        // Another fact table of the schema shares them.
        let other = env.warehouse_on("other_facts", 1000).await;
        assert_eq!(
            env.migrations("other_facts").await.len(),
            env.migrations(TABLE).await.len()
        );
        let t = ticker("MSFT");
        wh.load_side(&usual().batch(&t, at(0)), Upsert)
            .await
            .unwrap();
        assert_eq!(
            other.read_side(&t).await.unwrap(),
            wh.read_side(&t).await.unwrap()
        );
        wh.close().await;
        other.close().await;
    }

    /// An up-to-date schema someone damaged since: a side table dropped comes
    /// back with the next migrate (its migration runs again, its record is
    /// renewed, the other records stay); a side-table column dropped makes
    /// migrate fail, naming it. On Postgres the quick up-to-date check runs
    /// first: it must not hide either.
    pub async fn a_damaged_side_table_is_recreated_or_refused(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let records = env.migrations(TABLE).await;
        let last = records.last().unwrap().0;
        let t = ticker("MSFT");
        wh.load_side(&usual().batch(&t, at(0)), Upsert)
            .await
            .unwrap();

        env.exec(&format!("DROP TABLE {}", env.qualified("quality_findings")))
            .await;
        wh.migrate().await.unwrap();
        assert!(env.columns("quality_findings").await.len() == 5);
        let again = env.migrations(TABLE).await;
        assert_eq!(again.len(), records.len());
        assert_eq!(again[..again.len() - 1], records[..records.len() - 1]);
        assert_eq!(again.last().unwrap().0, last);
        // The other tables kept their rows.
        let back = wh.read_side(&t).await.unwrap();
        assert_eq!(
            (
                back.actions.len(),
                back.findings.len(),
                back.quarantine.len()
            ),
            (4, 0, 1)
        );
        let migrated = env.migrations(TABLE).await;
        wh.migrate().await.unwrap();
        assert_eq!(env.migrations(TABLE).await, migrated, "up to date again");

        for (table, column) in [
            ("fact_corporate_actions", "amount"),
            ("quality_quarantine", "detail"),
            ("quality_findings", "recorded_at"),
        ] {
            env.exec(&format!(
                "ALTER TABLE {} DROP COLUMN {column}",
                env.qualified(table)
            ))
            .await;
            let err = wh.migrate().await.unwrap_err();
            assert_permanent(
                err.into(),
                &[&format!("{table} has no column {column} after migrating")],
            );
            env.exec(&format!("DROP TABLE {}", env.qualified(table)))
                .await;
            wh.migrate().await.unwrap();
        }
        assert_eq!(env.columns("quality_findings").await.len(), 5);
        wh.close().await;
    }
}

on_both_backends!(
    a_failing_load_changes_no_table,
    migrate_creates_the_side_tables,
    a_damaged_side_table_is_recreated_or_refused,
);
