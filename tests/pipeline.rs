//! The whole pipeline in one process against a local chart server replaying
//! real recorded responses, with the filesystem lake and both SQLite and the
//! machine's Postgres. Expectations come from the recordings and the
//! independent indicator oracle, not from the code under test.

use mdp_core::messages::ScheduleEvent;
use mdp_devtools::Reply;
use mdp_lake::read_history;
use mdp_pipeline::{TickerOutcome, TickerSummary};
use mdp_tests::*;

fn range_event(tickers: &[&str], start: &str, end: &str) -> ScheduleEvent {
    ScheduleEvent {
        tickers: Some(tickers.iter().map(|t| t.to_string()).collect()),
        date: None,
        start: Some(d(start)),
        end: Some(d(end)),
    }
}

fn by_ticker<'a>(summary: &'a mdp_pipeline::RunSummary, t: &str) -> &'a TickerSummary {
    summary.tickers.iter().find(|s| s.ticker == t).unwrap()
}

/// A full run of the recorded ranges: exact bars, oracle indicators, and the
/// warehouse holding exactly the lake's rows.
async fn full_run_matches_oracle_and_lake(store: Store) {
    let server = recorded_server().await;
    let scratch = Scratch::new(&server, store);
    let pipeline = scratch.pipeline().await;
    let summary = pipeline
        .run(
            &range_event(&["MSFT", "BTC-USD"], "2020-01-01", "2022-01-31"),
            d("2022-01-31"),
        )
        .await
        .unwrap();
    assert!(summary.all_succeeded(), "{}", summary.render());
    assert_eq!(
        server.request_count("MSFT"),
        1,
        "one request per ticker per run"
    );
    assert_eq!(server.request_count("BTC-USD"), 1);
    assert_eq!(by_ticker(&summary, "MSFT").rows_fetched, 252);
    assert_eq!(by_ticker(&summary, "BTC-USD").rows_fetched, 366);
    assert_eq!(by_ticker(&summary, "MSFT").rows_loaded, 252);

    for (t, oracle_file) in [
        ("MSFT", "msft_expected.csv"),
        ("BTC-USD", "btc_expected.csv"),
    ] {
        let lake_rows = read_history(&pipeline.lake, &ticker(t)).await.unwrap();
        assert_rows_match_oracle(&lake_rows, &oracle(oracle_file));
        let warehouse_rows = warehouse_rows(&pipeline.config, Some(&ticker(t))).await;
        assert_eq!(
            warehouse_rows, lake_rows,
            "{t}: warehouse rows equal lake rows, timestamps included"
        );
    }

    // The same run again changes no row, in the lake or the warehouse.
    let lake_before = read_history(&pipeline.lake, &ticker("MSFT")).await.unwrap();
    let wh_before = warehouse_rows(&pipeline.config, None).await;
    let again = pipeline
        .run(
            &range_event(&["MSFT", "BTC-USD"], "2020-01-01", "2022-01-31"),
            d("2022-01-31"),
        )
        .await
        .unwrap();
    assert!(again.all_succeeded());
    assert_eq!(by_ticker(&again, "MSFT").rows_written, 0);
    assert_eq!(
        by_ticker(&again, "MSFT").rows_loaded,
        0,
        "nothing changed, nothing updated"
    );
    assert_eq!(
        read_history(&pipeline.lake, &ticker("MSFT")).await.unwrap(),
        lake_before
    );
    assert_eq!(warehouse_rows(&pipeline.config, None).await, wh_before);
    pipeline.warehouse.close().await;
    scratch.cleanup().await;
}

#[tokio::test]
async fn full_run_into_sqlite_matches_oracle_and_lake() {
    full_run_matches_oracle_and_lake(Store::Sqlite).await;
}

#[tokio::test]
async fn full_run_into_postgres_matches_oracle_and_lake() {
    full_run_matches_oracle_and_lake(Store::Postgres).await;
}

/// Running to D1 and then to D2 leaves the same lake and warehouse as one run to D2.
async fn incremental_equals_backfill(store: fn() -> Store) {
    let server = recorded_server().await;
    let one = Scratch::new(&server, store());
    let p1 = one.pipeline().await;
    p1.run(
        &range_event(&["NVDA"], "2021-02-01", "2021-12-31"),
        d("2021-12-31"),
    )
    .await
    .unwrap();

    let two = Scratch::new(&server, store());
    let p2 = two.pipeline().await;
    p2.run(
        &range_event(&["NVDA"], "2021-02-01", "2021-06-15"),
        d("2021-06-15"),
    )
    .await
    .unwrap();
    // Then the scheduled way: up to a target date, from the watermark on.
    let next = ScheduleEvent {
        tickers: Some(vec!["NVDA".into()]),
        date: Some(d("2021-12-31")),
        ..Default::default()
    };
    let summary = p2.run(&next, d("2021-12-31")).await.unwrap();
    let s = by_ticker(&summary, "NVDA");
    assert_eq!(
        s.range,
        Some((d("2021-06-16"), d("2021-12-31"))),
        "incremental from the watermark"
    );

    let a = read_history(&p1.lake, &ticker("NVDA")).await.unwrap();
    let b = read_history(&p2.lake, &ticker("NVDA")).await.unwrap();
    assert_same_values(&a, &b);
    let wa = warehouse_rows(&p1.config, None).await;
    let wb = warehouse_rows(&p2.config, None).await;
    assert_same_values(&wa, &wb);
    assert_same_values(&wa, &a);
    assert_eq!(a.first().unwrap().date(), d("2021-02-01"));
    assert_eq!(a.last().unwrap().date(), d("2021-12-31"));

    // A third run has nothing to fetch.
    let idle = p2.run(&next, d("2021-12-31")).await.unwrap();
    assert!(matches!(
        by_ticker(&idle, "NVDA").outcome,
        TickerOutcome::UpToDate
    ));
    assert_eq!(server.request_count("NVDA"), 3);
    for (p, s) in [(&p1, &one), (&p2, &two)] {
        p.warehouse.close().await;
        s.cleanup().await;
    }
}

#[tokio::test]
async fn incremental_equals_backfill_sqlite() {
    incremental_equals_backfill(|| Store::Sqlite).await;
}

#[tokio::test]
async fn incremental_equals_backfill_postgres() {
    incremental_equals_backfill(|| Store::Postgres).await;
}

#[tokio::test]
async fn exact_range_keeps_only_bars_dated_inside_it() {
    let server = recorded_server().await;
    let scratch = Scratch::new(&server, Store::Sqlite);
    let pipeline = scratch.pipeline().await;
    // Friday 2021-03-05 to Monday 2021-03-08: both ends inclusive, weekend empty.
    pipeline
        .run(
            &range_event(&["MSFT"], "2021-03-05", "2021-03-08"),
            d("2021-03-08"),
        )
        .await
        .unwrap();
    let msft: Vec<_> = read_history(&pipeline.lake, &ticker("MSFT"))
        .await
        .unwrap()
        .iter()
        .map(|r| r.date())
        .collect();
    assert_eq!(msft, [d("2021-03-05"), d("2021-03-08")]);
    // Crypto trades every day, stamped 00:00 UTC: the end date's bar is kept.
    pipeline
        .run(
            &range_event(&["BTC-USD"], "2020-03-05", "2020-03-08"),
            d("2020-03-08"),
        )
        .await
        .unwrap();
    let btc: Vec<_> = read_history(&pipeline.lake, &ticker("BTC-USD"))
        .await
        .unwrap()
        .iter()
        .map(|r| r.date())
        .collect();
    assert_eq!(
        btc,
        [
            d("2020-03-05"),
            d("2020-03-06"),
            d("2020-03-07"),
            d("2020-03-08")
        ]
    );
    pipeline.warehouse.close().await;
}

#[tokio::test]
async fn unknown_symbol_and_rate_limit_affect_only_their_ticker() {
    let server = recorded_server().await;
    server.push_reply("NVDA", Reply::too_many_requests("1"));
    let mut scratch = Scratch::new(&server, Store::Sqlite);
    scratch.set("MARKET_DATA_RETRY_DELAY", "5");
    let pipeline = scratch.pipeline().await;
    let event = range_event(
        &["MSFT", "SIX", "NVDA", "bad ticker!"],
        "2021-03-01",
        "2021-03-31",
    );
    let summary = pipeline.run(&event, d("2021-03-31")).await.unwrap();
    assert!(!summary.all_succeeded());
    match &by_ticker(&summary, "SIX").outcome {
        TickerOutcome::Failed(e) => {
            assert!(!e.is_transient() && e.message().contains("404"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(summary.rejected.len(), 1);
    assert!(matches!(
        by_ticker(&summary, "MSFT").outcome,
        TickerOutcome::Succeeded
    ));
    let nvda = by_ticker(&summary, "NVDA");
    assert!(matches!(nvda.outcome, TickerOutcome::Succeeded));
    assert_eq!(server.request_count("NVDA"), 2, "one retry after the 429");
    assert!(
        nvda.fetch_time.as_secs_f64() >= 0.95 && nvda.fetch_time.as_secs_f64() < 2.5,
        "{:?}",
        nvda.fetch_time
    );
    assert_eq!(nvda.rows_loaded, 23);
    assert_eq!(warehouse_rows(&pipeline.config, None).await.len(), 46);
    assert!(summary.render().contains("FAILED"));
    pipeline.warehouse.close().await;
}

#[tokio::test]
async fn load_strategies_through_the_pipeline() {
    let server = recorded_server().await;
    let mut scratch = Scratch::new(&server, Store::Sqlite);
    let pipeline = scratch.pipeline().await;
    pipeline
        .run(
            &range_event(&["MSFT", "NVDA"], "2021-02-01", "2021-12-31"),
            d("2021-12-31"),
        )
        .await
        .unwrap();
    let nvda_rows = warehouse_rows(&pipeline.config, Some(&ticker("NVDA"))).await;
    pipeline.warehouse.close().await;

    // truncate_insert of MSFT over a short range still loads MSFT's whole history
    // and leaves NVDA alone.
    scratch.set("WAREHOUSE_LOAD_STRATEGY", "truncate_insert");
    let truncating = scratch.pipeline().await;
    let s = truncating
        .run(
            &range_event(&["MSFT"], "2021-12-01", "2021-12-31"),
            d("2021-12-31"),
        )
        .await
        .unwrap();
    assert!(s.all_succeeded(), "{}", s.render());
    let msft_lake = read_history(&truncating.lake, &ticker("MSFT"))
        .await
        .unwrap();
    assert_eq!(
        warehouse_rows(&truncating.config, Some(&ticker("MSFT"))).await,
        msft_lake
    );
    assert_eq!(
        warehouse_rows(&truncating.config, Some(&ticker("NVDA"))).await,
        nvda_rows
    );
    truncating.warehouse.close().await;

    // append adds January without touching or duplicating what is there.
    scratch.set("WAREHOUSE_LOAD_STRATEGY", "append");
    let appending = scratch.pipeline().await;
    appending
        .run(
            &range_event(&["MSFT"], "2021-12-01", "2022-01-28"),
            d("2022-01-28"),
        )
        .await
        .unwrap();
    let msft_lake = read_history(&appending.lake, &ticker("MSFT"))
        .await
        .unwrap();
    assert_eq!(msft_lake.len(), 252);
    assert_eq!(
        warehouse_rows(&appending.config, Some(&ticker("MSFT"))).await,
        msft_lake
    );
    appending.warehouse.close().await;
}

#[tokio::test]
async fn reload_rebuilds_an_empty_warehouse_from_the_lake() {
    let server = recorded_server().await;
    let mut scratch = Scratch::new(&server, Store::Sqlite);
    let pipeline = scratch.pipeline().await;
    pipeline
        .run(
            &range_event(&["MSFT", "^GSPC", "BTC-USD"], "2021-01-01", "2021-03-31"),
            d("2021-03-31"),
        )
        .await
        .unwrap();
    let lake_rows = read_history(&pipeline.lake, &ticker("MSFT")).await.unwrap();
    pipeline.warehouse.close().await;

    // A brand-new warehouse file, filled by `mdp load` from the lake alone.
    let fresh = scratch.dir.path().join("fresh.db");
    scratch.set("WAREHOUSE_URL", &format!("sqlite://{}", fresh.display()));
    let reloading = scratch.pipeline().await;
    let results = reloading.reload(None).await.unwrap();
    let names: Vec<String> = results.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(
        names,
        ["BTC-USD", "MSFT"],
        "^GSPC is unknown to the server, so it has no partitions"
    );
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(
        warehouse_rows(&reloading.config, Some(&ticker("MSFT"))).await,
        lake_rows
    );
    reloading.warehouse.close().await;
}

/// A source that panics for one ticker (a bug met by that ticker's data)
/// and asks the real chart client for the others.
struct PanicsFor {
    ticker: &'static str,
    real: std::sync::Arc<dyn mdp_core::source::MarketDataSource>,
}

#[async_trait::async_trait]
impl mdp_core::source::MarketDataSource for PanicsFor {
    async fn fetch_daily(
        &self,
        ticker: &mdp_core::Ticker,
        start: chrono::NaiveDate,
        end: chrono::NaiveDate,
    ) -> Result<mdp_core::source::ChartFetch, mdp_core::StageError> {
        if ticker.as_str() == self.ticker {
            panic!("unexpected data for {ticker}");
        }
        self.real.fetch_daily(ticker, start, end).await
    }
}

/// A panic inside one ticker's work fails that ticker only: the others
/// complete and the run reports the failure.
#[tokio::test]
async fn a_panic_in_one_ticker_never_stops_the_others() {
    let server = recorded_server().await;
    let scratch = Scratch::new(&server, Store::Sqlite);
    let mut pipeline = scratch.pipeline().await;
    pipeline.source = std::sync::Arc::new(PanicsFor {
        ticker: "NVDA",
        real: pipeline.source.clone(),
    });
    let event = ScheduleEvent {
        tickers: Some(vec!["MSFT".into(), "NVDA".into()]),
        start: Some(d("2021-02-01")),
        end: Some(d("2021-02-26")),
        ..ScheduleEvent::default()
    };
    let summary = pipeline.run(&event, d("2025-01-02")).await.unwrap();
    let outcome = |t: &str| {
        summary
            .tickers
            .iter()
            .find(|s| s.ticker == t)
            .map(|s| s.outcome.clone())
            .unwrap()
    };
    assert!(matches!(outcome("MSFT"), TickerOutcome::Succeeded));
    match outcome("NVDA") {
        TickerOutcome::Failed(e) => {
            assert!(!e.is_transient() && e.message().contains("panic"), "{e}")
        }
        other => panic!("NVDA: {other:?}"),
    }
    assert!(!summary.all_succeeded());
    assert_eq!(warehouse_rows(&pipeline.config, None).await.len(), 19);
    pipeline.warehouse.close().await;
}

/// A response poisoned with bars that break hard rules, through the whole
/// pipeline: the bad bars are quarantined in the lake and the warehouse, the
/// good ones load; the response's splits and dividends and the findings
/// reach the warehouse equal to the lake's; a second run changes nothing.
async fn a_poisoned_response_quarantines_its_bad_bars_while_the_good_ones_load(store: Store) {
    use mdp_core::quality::{ActionKind, HardRule};
    use mdp_lake::{read_corporate_actions, read_quality_findings, read_quarantine};

    let mut body: serde_json::Value = serde_json::from_slice(&yahoo_fixture(
        "aapl_1d_range_2020-08-31_2020-11-06_div_split.json",
    ))
    .unwrap();
    let quote = &mut body["chart"]["result"][0]["indicators"]["quote"][0];
    quote["close"][5] = serde_json::json!(-1.0);
    quote["volume"][6] = serde_json::json!(-100);
    let low = quote["low"][7].as_f64().unwrap();
    quote["high"][7] = serde_json::json!(low / 2.0);
    let server = mdp_devtools::ChartReplayServer::start().await.unwrap();
    server
        .add_series("AAPL", &serde_json::to_vec(&body).unwrap())
        .unwrap();
    let scratch = Scratch::new(&server, store);
    let pipeline = scratch.pipeline().await;
    let event = range_event(&["AAPL"], "2020-08-31", "2020-11-06");
    let summary = pipeline.run(&event, d("2020-11-09")).await.unwrap();
    assert!(summary.all_succeeded(), "{}", summary.render());
    let aapl = by_ticker(&summary, "AAPL");
    assert_eq!((aapl.rows_fetched, aapl.bars_quarantined), (49, 3));
    assert!(
        summary.render().contains("AAPL: 3 bar(s) quarantined"),
        "{}",
        summary.render()
    );

    let t = ticker("AAPL");
    let lake_rows = read_history(&pipeline.lake, &t).await.unwrap();
    assert_eq!(lake_rows.len(), 46);
    assert_eq!(warehouse_rows(&pipeline.config, Some(&t)).await, lake_rows);

    let warehouse = mdp_warehouse::connect_rows(&pipeline.config).await.unwrap();
    let side = warehouse.read_side(&t).await.unwrap();
    let quarantine = read_quarantine(&pipeline.lake, &t).await.unwrap();
    assert_eq!(quarantine.len(), 3);
    assert_eq!(
        side.quarantine, quarantine,
        "the warehouse holds the lake's quarantine"
    );
    assert_eq!(
        quarantine
            .iter()
            .map(|q| q.rules.clone())
            .collect::<Vec<_>>(),
        vec![
            vec![HardRule::PriceNotPositive],
            vec![HardRule::NegativeVolume],
            vec![HardRule::HighBelowOpenOrClose]
        ]
    );
    assert!(
        quarantine
            .iter()
            .all(|q| !lake_rows.iter().any(|r| r.date() == q.bar.date))
    );

    // The 4-for-1 split of 2020-08-31 and the 0.205 dividend of 2020-11-06.
    let actions = read_corporate_actions(&pipeline.lake, &t).await.unwrap();
    assert_eq!(
        actions
            .iter()
            .map(|a| (a.date, a.kind, a.amount, a.ratio()))
            .collect::<Vec<_>>(),
        vec![
            (d("2020-08-31"), ActionKind::Split, None, Some(4.0)),
            (d("2020-11-06"), ActionKind::Dividend, Some(0.205), None)
        ]
    );
    assert_eq!(
        side.actions
            .iter()
            .map(|a| a.action.clone())
            .collect::<Vec<_>>(),
        actions
    );
    let findings = read_quality_findings(&pipeline.lake, &t).await.unwrap();
    // Each quarantined bar leaves its session missing.
    assert_eq!(
        findings
            .iter()
            .filter(|f| f.rule == mdp_core::quality::SoftRule::MissingSession)
            .count(),
        3,
        "{findings:?}"
    );
    assert_eq!(
        side.findings
            .iter()
            .map(|f| f.finding.clone())
            .collect::<Vec<_>>(),
        findings
    );

    // The same run again: nothing changes, in the lake or the warehouse.
    let again = pipeline.run(&event, d("2020-11-09")).await.unwrap();
    assert!(again.all_succeeded());
    assert_eq!(warehouse.read_side(&t).await.unwrap(), side);
    assert_eq!(read_history(&pipeline.lake, &t).await.unwrap(), lake_rows);
    warehouse.close().await;
    pipeline.warehouse.close().await;
    scratch.cleanup().await;
}

#[tokio::test]
async fn a_poisoned_response_quarantines_its_bad_bars_while_the_good_ones_load_sqlite() {
    a_poisoned_response_quarantines_its_bad_bars_while_the_good_ones_load(Store::Sqlite).await;
}

#[tokio::test]
async fn a_poisoned_response_quarantines_its_bad_bars_while_the_good_ones_load_postgres() {
    a_poisoned_response_quarantines_its_bad_bars_while_the_good_ones_load(Store::Postgres).await;
}
