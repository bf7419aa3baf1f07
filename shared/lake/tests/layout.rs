//! `mdp lake migrate`: files of the earlier layout (with a ticker column)
//! are rewritten without it, every value kept; a second run changes nothing.

use std::sync::Arc;

use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use mdp_core::config::ParquetCompression;
use mdp_core::row::DailyBar;
use mdp_core::{CuratedRow, Indicators, InstrumentMeta, Lake, LocalStore, Ticker};
use mdp_lake::{migrate_layout, read_history, rows_to_frame};

fn rows(first: i64, n: i64) -> Vec<CuratedRow> {
    let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    (first..first + n)
        .map(|i| CuratedRow {
            ticker: "EURUSD=X".into(),
            bar: DailyBar {
                date: NaiveDate::from_ymd_opt(2023, 12, 20).unwrap() + TimeDelta::days(i),
                open: Some(1.1 + i as f64 / 7.0),
                high: None,
                low: Some(0.9),
                close: 1.0 + i as f64 / 3.0,
                adj_close: None,
                volume: None,
            },
            indicators: Indicators {
                rsi: Some(50.0 + i as f64),
                ..Indicators::default()
            },
            meta: InstrumentMeta {
                currency: Some("USD".into()),
                ..InstrumentMeta::default()
            },
            created_at: at,
            updated_at: at + TimeDelta::microseconds(i),
        })
        .collect()
}

/// A file as the earlier layout wrote it: the ticker as the first column.
fn old_layout(rows: &[CuratedRow]) -> Vec<u8> {
    let mut frame = rows_to_frame(rows).unwrap();
    let ticker = polars::prelude::Column::new("ticker".into(), vec!["EURUSD=X"; rows.len()]);
    frame.insert_column(0, ticker).unwrap();
    let mut buf = Vec::new();
    polars::prelude::ParquetWriter::new(&mut buf)
        .finish(&mut frame)
        .unwrap();
    buf
}

fn column_names(bytes: &[u8]) -> Vec<String> {
    use polars::prelude::SerReader;
    let mut reader = polars::prelude::ParquetReader::new(std::io::Cursor::new(bytes.to_vec()));
    reader
        .schema()
        .unwrap()
        .iter_names()
        .map(|n| n.to_string())
        .collect()
}

#[tokio::test]
async fn old_files_are_rewritten_once_with_every_value_kept() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let ticker = Ticker::parse("EURUSD=X").unwrap();
    let all = rows(0, 20); // 12 days of 2023, 8 of 2024
    let (y2023, y2024) = all.split_at(12);
    let k2023 = Lake::curated_key(&ticker, 2023);
    let k2024 = Lake::curated_key(&ticker, 2024);
    lake.store().put(&k2023, old_layout(y2023)).await.unwrap();
    // One partition already in the current layout.
    let current = mdp_lake::encode_parquet(y2024, ParquetCompression::Snappy).unwrap();
    lake.store().put(&k2024, current.clone()).await.unwrap();
    assert_eq!(read_history(&lake, &ticker).await.unwrap(), all);

    let report = migrate_layout(&lake, &ticker, ParquetCompression::Snappy)
        .await
        .unwrap();
    assert_eq!(report.rewritten, vec![k2023.clone()]);
    assert_eq!(report.unchanged, 1);
    let rewritten = lake.store().get(&k2023).await.unwrap().unwrap();
    assert!(!column_names(&rewritten).contains(&"ticker".to_string()));
    assert_eq!(column_names(&rewritten)[0], "date");
    assert_eq!(
        lake.store().get(&k2024).await.unwrap().unwrap(),
        current,
        "untouched"
    );
    let back = read_history(&lake, &ticker).await.unwrap();
    assert_eq!(back, all);
    assert!(back.iter().zip(&all).all(|(a, b)| a.same_values(b)));

    let again = migrate_layout(&lake, &ticker, ParquetCompression::Snappy)
        .await
        .unwrap();
    assert!(again.rewritten.is_empty());
    assert_eq!(again.unchanged, 2);
    assert_eq!(lake.store().get(&k2023).await.unwrap().unwrap(), rewritten);
}
