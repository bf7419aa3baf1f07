//! The transform stage on a real filesystem lake: Parquet layout and types,
//! merge rules, idempotence, and incremental == backfill.

use std::sync::Arc;

use chrono::{Duration, NaiveDate, Utc};
use mdp_core::config::ParquetCompression;
use mdp_core::messages::TransformRequest;
use mdp_core::row::COLUMNS;
use mdp_core::{Lake, LocalStore, Ticker};
use mdp_lake::{decode_parquet, encode_parquet, read_history};
use mdp_transform::{compute_indicators, lake_now, transform_stage};
use polars_parquet::parquet::compression::Compression;
use polars_parquet::parquet::schema::types::PhysicalType;

const MSFT: &str = "msft_1d_range_2021-02-01_2022-01-28_dividends.json";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/yahoo/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn lake_in(dir: &std::path::Path) -> Lake {
    Lake::new(Arc::new(LocalStore::new(dir)))
}

/// Lands `body` as the raw response for the range and transforms it.
async fn transform(
    lake: &Lake,
    ticker: &str,
    body: &[u8],
    start: &str,
    end: &str,
) -> mdp_transform::TransformOutcome {
    let ticker = Ticker::parse(ticker).unwrap();
    let raw_key = Lake::raw_key(&ticker, d(start), d(end));
    lake.store().put(&raw_key, body.to_vec()).await.unwrap();
    let request = TransformRequest {
        v: 1,
        run_id: "t".into(),
        ticker,
        raw_key,
        start: d(start),
        end: d(end),
    };
    transform_stage(lake, &request, ParquetCompression::Snappy, lake_now())
        .await
        .unwrap()
}

#[tokio::test]
async fn writes_one_snappy_partition_per_year_with_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path());
    let out = transform(&lake, "MSFT", &fixture(MSFT), "2021-02-01", "2022-01-28").await;
    assert_eq!(out.bars_in_range, 252);
    assert_eq!(out.rows_total, 252);
    let y2021 = "curated/market_data/ticker=MSFT/year=2021/part-0.parquet";
    let y2022 = "curated/market_data/ticker=MSFT/year=2022/part-0.parquet";
    assert_eq!(out.partitions_written, [y2021, y2022]);
    let next = out.next.unwrap();
    assert_eq!(next.partition_keys, [y2021, y2022]);
    assert_eq!(
        (next.rows, next.min_date, next.max_date),
        (252, Some(d("2021-02-01")), Some(d("2022-01-28")))
    );

    let bytes = std::fs::read(dir.path().join(y2021)).unwrap();
    let meta =
        polars_parquet::parquet::read::read_metadata(&mut std::io::Cursor::new(&bytes)).unwrap();
    let columns = meta.row_groups[0].parquet_columns();
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c.descriptor().path_in_schema[0].as_str())
        .collect();
    // DESIGN.md section 4: the contract columns less the partition key
    // (the ticker is in the path).
    assert_eq!(names, &COLUMNS[1..]);
    for c in columns {
        let name = c.descriptor().path_in_schema[0].as_str();
        assert_eq!(c.compression(), Compression::Snappy, "{name}");
        // Min/max statistics on every column chunk, so readers can prune.
        let stats = c.statistics(&meta.footer_buf).expect("statistics").unwrap();
        assert!(stats.null_count().is_some(), "{name}: null count");
        let expected = match name {
            "date" => PhysicalType::Int32,
            "volume" | "created_at" | "updated_at" => PhysicalType::Int64,
            "ticker" | "currency" | "exchange" | "instrument_type" | "long_name" | "short_name" => {
                PhysicalType::ByteArray
            }
            _ => PhysicalType::Double,
        };
        assert_eq!(c.physical_type(), expected, "{name}");
    }

    let rows = decode_parquet(&bytes, "MSFT").unwrap();
    assert_eq!(
        rows.len(),
        252 - 19,
        "2021 sessions: all but the 19 of January 2022"
    );
    assert!(
        rows.windows(2).all(|w| w[0].date() < w[1].date()),
        "sorted, unique dates"
    );
    assert!(rows.iter().all(
        |r| r.ticker == "MSFT" && r.meta.long_name.as_deref() == Some("Microsoft Corporation")
    ));
    let mark = lake
        .read_watermark(&Ticker::parse("MSFT").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((mark.last_date, mark.rows), (d("2022-01-28"), 252));
    // Indicators run over the whole history, across the year boundary.
    let all = read_history(&lake, &Ticker::parse("MSFT").unwrap())
        .await
        .unwrap();
    let closes: Vec<f64> = all.iter().map(|r| r.bar.close).collect();
    let fresh = compute_indicators(&closes);
    assert!(all.iter().zip(&fresh).all(|(r, f)| r.indicators == *f));
}

#[tokio::test]
async fn incremental_runs_equal_one_backfill() {
    let body = fixture(MSFT);
    let full_dir = tempfile::tempdir().unwrap();
    let full = lake_in(full_dir.path());
    transform(&full, "MSFT", &body, "2021-02-01", "2022-01-28").await;

    let inc_dir = tempfile::tempdir().unwrap();
    let inc = lake_in(inc_dir.path());
    transform(&inc, "MSFT", &body, "2021-02-01", "2021-06-30").await;
    transform(&inc, "MSFT", &body, "2021-07-01", "2021-12-31").await;
    let last = transform(&inc, "MSFT", &body, "2022-01-01", "2022-01-28").await;
    assert_eq!(
        last.partitions_written,
        ["curated/market_data/ticker=MSFT/year=2022/part-0.parquet"]
    );

    let t = Ticker::parse("MSFT").unwrap();
    let a = read_history(&full, &t).await.unwrap();
    let b = read_history(&inc, &t).await.unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(x.same_values(y), "{} differs", x.date());
    }
}

#[tokio::test]
async fn replaying_the_same_bars_rewrites_nothing_and_keeps_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path());
    transform(&lake, "MSFT", &fixture(MSFT), "2021-02-01", "2022-01-28").await;
    let t = Ticker::parse("MSFT").unwrap();
    let before = read_history(&lake, &t).await.unwrap();
    let again = transform(&lake, "MSFT", &fixture(MSFT), "2021-11-01", "2022-01-28").await;
    assert!(
        again.partitions_written.is_empty(),
        "{:?}",
        again.partitions_written
    );
    assert_eq!(again.rows_written, 0);
    // The range is still handed to load, so a load that failed earlier is redone.
    assert_eq!(again.next.unwrap().partition_keys.len(), 2);
    assert_eq!(read_history(&lake, &t).await.unwrap(), before);
}

#[tokio::test]
async fn new_bars_replace_stored_bars_and_later_indicators_follow() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path());
    let body = fixture(MSFT);
    transform(&lake, "MSFT", &body, "2021-02-01", "2022-01-28").await;
    let t = Ticker::parse("MSFT").unwrap();
    let before = read_history(&lake, &t).await.unwrap();

    // A re-capture where 2021-12-01's close was revised.
    let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let idx = before
        .iter()
        .position(|r| r.date() == d("2021-12-01"))
        .unwrap();
    v["chart"]["result"][0]["indicators"]["quote"][0]["close"][idx] = serde_json::json!(333.25);
    let revised = serde_json::to_vec(&v).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let out = transform(&lake, "MSFT", &revised, "2021-12-01", "2021-12-01").await;
    assert_eq!(out.bars_in_range, 1);
    let after = read_history(&lake, &t).await.unwrap();
    assert_eq!(after.len(), before.len());
    assert_eq!(after[idx].bar.close, 333.25);
    assert!(after[idx].updated_at > before[idx].updated_at);
    assert_eq!(after[idx].created_at, before[idx].created_at);
    // Rows before the revision are untouched, later ones recomputed.
    assert_eq!(after[..idx], before[..idx]);
    assert_ne!(
        after[idx + 1].indicators.sma_7,
        before[idx + 1].indicators.sma_7
    );
    let closes: Vec<f64> = after.iter().map(|r| r.bar.close).collect();
    assert!(
        after
            .iter()
            .zip(compute_indicators(&closes))
            .all(|(r, f)| r.indicators == f)
    );
    // Both years are loaded: 2021 holds the change, 2022 holds recomputed indicators.
    assert_eq!(out.partitions_written.len(), 2);
}

#[tokio::test]
async fn parquet_round_trip_is_exact_for_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path());
    transform(
        &lake,
        "BTC-USD",
        &fixture("btc-usd_1d_range_2020_nulls.json"),
        "2020-01-01",
        "2021-01-04",
    )
    .await;
    let mut rows = read_history(&lake, &Ticker::parse("BTC-USD").unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 366);
    rows[3].bar.open = None;
    rows[3].bar.volume = None;
    rows[3].created_at = Utc::now() - Duration::days(400);
    for codec in [
        ParquetCompression::Snappy,
        ParquetCompression::Zstd,
        ParquetCompression::Gzip,
        ParquetCompression::None,
    ] {
        let bytes = encode_parquet(&rows, codec).unwrap();
        let back = decode_parquet(&bytes, "BTC-USD").unwrap();
        assert_eq!(back.len(), rows.len());
        for (a, b) in rows.iter().zip(&back) {
            assert!(a.same_values(b), "{codec:?} {}", a.date());
            assert_eq!(
                a.created_at.timestamp_micros(),
                b.created_at.timestamp_micros()
            );
        }
    }
}

#[tokio::test]
async fn bad_requests_are_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path());
    let t = Ticker::parse("MSFT").unwrap();
    let missing = TransformRequest {
        v: 1,
        run_id: "r".into(),
        ticker: t.clone(),
        raw_key: Lake::raw_key(&t, d("2021-02-01"), d("2021-02-05")),
        start: d("2021-02-01"),
        end: d("2021-02-05"),
    };
    let err = transform_stage(&lake, &missing, ParquetCompression::Snappy, Utc::now())
        .await
        .unwrap_err();
    assert!(
        !err.is_transient() && err.message().contains("does not exist"),
        "{err}"
    );
    let foreign = TransformRequest {
        raw_key: "raw/yahoo/chart/ticker=NVDA/x.json".into(),
        ..missing.clone()
    };
    let err = transform_stage(&lake, &foreign, ParquetCompression::Snappy, Utc::now())
        .await
        .unwrap_err();
    assert!(
        !err.is_transient() && err.message().contains("not in the raw zone"),
        "{err}"
    );
    let escape = TransformRequest {
        raw_key: "raw/yahoo/chart/ticker=MSFT/../../../etc/passwd".into(),
        ..missing.clone()
    };
    let err = transform_stage(&lake, &escape, ParquetCompression::Snappy, Utc::now())
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    lake.store()
        .put(&missing.raw_key, b"{\"chart\":".to_vec())
        .await
        .unwrap();
    let err = transform_stage(&lake, &missing, ParquetCompression::Snappy, Utc::now())
        .await
        .unwrap_err();
    assert!(
        !err.is_transient() && err.message().contains("not a chart response"),
        "{err}"
    );
}
