//! The load stage over its two ports, once, with the in-memory warehouse and
//! a real filesystem lake: which partitions a message loads, what each
//! strategy does, and what is refused.

use std::sync::Arc;

use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use mdp_core::config::LoadStrategy::{Append, TruncateInsert, Upsert};
use mdp_core::config::ParquetCompression;
use mdp_core::messages::LoadRequest;
use mdp_core::row::DailyBar;
use mdp_core::{CuratedRow, ErrorClass, Indicators, InstrumentMeta, Lake, LocalStore, Ticker};
use mdp_warehouse::{LoadReport, MemoryWarehouse, RowWarehouse, load_stage, reload_ticker};

fn ticker(s: &str) -> Ticker {
    Ticker::parse(s).unwrap()
}

/// `n` daily rows of `ticker` from `first` days after 2024-01-02.
fn rows(ticker: &str, first: i64, n: i64) -> Vec<CuratedRow> {
    let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    (first..first + n)
        .map(|i| CuratedRow {
            ticker: ticker.into(),
            bar: DailyBar {
                date: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap() + TimeDelta::days(i),
                open: Some(10.0 + i as f64),
                high: Some(11.0 + i as f64),
                low: Some(9.0 + i as f64),
                close: 10.5 + i as f64,
                adj_close: None,
                volume: Some(1000 + i),
            },
            indicators: Indicators::default(),
            meta: InstrumentMeta::default(),
            created_at: at,
            updated_at: at,
        })
        .collect()
}

fn report(rows_in: usize, inserted: u64, updated: u64, deleted: u64) -> LoadReport {
    LoadReport {
        rows_in,
        inserted,
        updated,
        deleted,
    }
}

async fn put_partition(lake: &Lake, rows: &[CuratedRow], year: i32) -> String {
    let key = Lake::curated_key(&ticker(&rows[0].ticker), year);
    let bytes = mdp_lake::encode_parquet(rows, ParquetCompression::Snappy).unwrap();
    lake.store().put(&key, bytes).await.unwrap();
    key
}

fn request(ticker: &Ticker, keys: Vec<String>) -> LoadRequest {
    LoadRequest {
        v: 1,
        run_id: "test".into(),
        ticker: ticker.clone(),
        partition_keys: keys,
        rows: 0,
        min_date: None,
        max_date: None,
    }
}

#[tokio::test]
async fn loads_what_the_message_names_and_truncate_takes_the_whole_ticker() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let wh = MemoryWarehouse::new();
    let msft = ticker("MSFT");
    let y2024 = rows("MSFT", 0, 30);
    let y2025 = rows("MSFT", 400, 10);
    let k2024 = put_partition(&lake, &y2024, 2024).await;
    let k2025 = put_partition(&lake, &y2025, 2025).await;
    let other = rows("AAPL", 0, 5);
    put_partition(&lake, &other, 2024).await;

    let r = load_stage(&lake, &wh, &request(&msft, vec![k2025.clone()]), Upsert)
        .await
        .unwrap();
    assert_eq!(r, report(10, 10, 0, 0));
    assert_eq!(wh.read_rows(None).await.unwrap(), y2025);

    // Repeated keys load once, partitions in year order; append skips what is there.
    let keys = vec![k2025.clone(), k2024.clone(), k2025.clone()];
    let r = load_stage(&lake, &wh, &request(&msft, keys), Append)
        .await
        .unwrap();
    assert_eq!(r, report(40, 30, 0, 0));
    let all: Vec<CuratedRow> = y2024.iter().chain(&y2025).cloned().collect();
    assert_eq!(wh.read_rows(Some(&msft)).await.unwrap(), all);

    // A changed value in the lake: upsert rewrites that row only, keeping created_at.
    let mut changed = y2025.clone();
    changed[3].bar.close += 1.0;
    changed[3].created_at += TimeDelta::days(5);
    changed[3].updated_at += TimeDelta::days(5);
    put_partition(&lake, &changed, 2025).await;
    let r = load_stage(&lake, &wh, &request(&msft, vec![k2025.clone()]), Upsert)
        .await
        .unwrap();
    assert_eq!(r, report(10, 0, 1, 0));
    let stored = wh.read_rows(Some(&msft)).await.unwrap();
    assert_eq!(stored[33].bar.close, changed[3].bar.close);
    assert_eq!(stored[33].created_at, y2025[3].created_at);
    assert_eq!(stored[33].updated_at, changed[3].updated_at);

    // truncate_insert replaces every row of the ticker from every partition,
    // whatever the message lists, and leaves other tickers alone.
    reload_ticker(&lake, &wh, &ticker("AAPL"), Upsert)
        .await
        .unwrap();
    let r = load_stage(&lake, &wh, &request(&msft, vec![k2025]), TruncateInsert)
        .await
        .unwrap();
    assert_eq!(r, report(40, 40, 0, 40));
    assert_eq!(wh.read_rows(Some(&ticker("AAPL"))).await.unwrap(), other);
    let r = reload_ticker(&lake, &wh, &msft, Upsert).await.unwrap();
    assert_eq!(r, report(40, 0, 0, 0));
}

#[tokio::test]
async fn foreign_missing_and_empty_inputs_are_refused_permanently() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let wh = MemoryWarehouse::new();
    let msft = ticker("MSFT");
    put_partition(&lake, &rows("MSFT", 0, 3), 2024).await;
    reload_ticker(&lake, &wh, &msft, Upsert).await.unwrap();

    let foreign = "curated/market_data/ticker=AAPL/year=2024/part-0.parquet".to_string();
    let err = load_stage(&lake, &wh, &request(&msft, vec![foreign]), Upsert)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(
        err.to_string()
            .contains("is not a curated partition of MSFT"),
        "{err}"
    );

    let missing = Lake::curated_key(&msft, 2019);
    let err = load_stage(&lake, &wh, &request(&msft, vec![missing.clone()]), Upsert)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains(&missing), "{err}");

    // An empty lake never wipes the warehouse.
    let empty = Lake::new(Arc::new(LocalStore::new(dir.path().join("none"))));
    let err = reload_ticker(&empty, &wh, &msft, TruncateInsert)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(
        err.to_string().contains("no curated rows in the lake"),
        "{err}"
    );
    assert_eq!(wh.read_rows(None).await.unwrap().len(), 3);
    // Nothing to do is not an error for the other strategies.
    assert_eq!(
        reload_ticker(&empty, &wh, &msft, Upsert).await.unwrap(),
        LoadReport::default()
    );
}

/// The load mark claims only what the warehouse holds: a load of this run's
/// partition records the watermark's generation when nothing older is
/// missing, and not when an earlier load of another year failed (that year
/// would otherwise never be loaded).
#[tokio::test]
async fn a_load_records_its_generation_only_when_nothing_older_is_missing() {
    use mdp_core::lake::Watermark;

    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let wh = MemoryWarehouse::new();
    let msft = ticker("MSFT");
    let k2024 = put_partition(&lake, &rows("MSFT", 0, 30), 2024).await;
    let k2025 = put_partition(&lake, &rows("MSFT", 400, 10), 2025).await;
    let watermark = |generation: u64, partitions: &[(i32, u64)]| Watermark {
        indicator_tail: None,
        quarantined_bars: 0,
        quality_findings: 0,
        last_date: NaiveDate::from_ymd_opt(2025, 2, 14).unwrap(),
        rows: 40,
        updated_at: Utc::now(),
        generation,
        partitions: partitions.iter().copied().collect(),
        instrument_type: None,
    };
    let mark = |lake: &Lake| {
        let lake = lake.clone();
        let msft = msft.clone();
        async move {
            lake.read_load_mark(&msft)
                .await
                .unwrap()
                .map(|m| m.generation)
        }
    };

    // Generation 1 wrote 2024 and its load never happened; generation 2
    // wrote 2025, and its load names only 2025.
    lake.write_watermark(&msft, &watermark(2, &[(2024, 1), (2025, 2)]))
        .await
        .unwrap();
    load_stage(&lake, &wh, &request(&msft, vec![k2025.clone()]), Upsert)
        .await
        .unwrap();
    assert_eq!(mark(&lake).await, None, "2024 is still missing");

    // The catch-up loads both: recorded.
    load_stage(
        &lake,
        &wh,
        &request(&msft, vec![k2024.clone(), k2025.clone()]),
        Upsert,
    )
    .await
    .unwrap();
    assert_eq!(mark(&lake).await, Some(2));

    // The daily case: generation 3 rewrote 2025 only, its load names 2025.
    lake.write_watermark(&msft, &watermark(3, &[(2024, 1), (2025, 3)]))
        .await
        .unwrap();
    load_stage(&lake, &wh, &request(&msft, vec![k2025]), Upsert)
        .await
        .unwrap();
    assert_eq!(mark(&lake).await, Some(3));
}
