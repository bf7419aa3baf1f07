//! The curated codec: what it writes follows the one schema, reads back bit
//! for bit, and a file that is not a curated partition is refused by name.

use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use mdp_core::config::ParquetCompression;
use mdp_core::row::DailyBar;
use mdp_core::schema::{COLUMNS, ColumnType, MARKET_DATA};
use mdp_core::{CuratedRow, Indicators, InstrumentMeta};
use mdp_lake::{ParquetError, decode_parquet, encode_parquet, rows_to_frame};
use polars::prelude::DataType;

fn rows(n: i64) -> Vec<CuratedRow> {
    let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap() + TimeDelta::microseconds(7);
    (0..n)
        .map(|i| CuratedRow {
            ticker: "^GSPC".into(),
            bar: DailyBar {
                date: NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + TimeDelta::days(i * 9000),
                open: (i % 2 == 0).then_some(0.1 + 0.2),
                high: Some(f64::MAX),
                low: Some(f64::MIN_POSITIVE),
                close: 4000.0 + i as f64 / 3.0,
                adj_close: None,
                volume: (i != 1).then_some(i64::MAX - i),
            },
            indicators: Indicators {
                rsi: Some(-0.0),
                macd: Some(1e-300),
                ..Indicators::default()
            },
            meta: InstrumentMeta {
                currency: Some("USD".into()),
                long_name: Some("S&P 500 ✓".into()),
                ..InstrumentMeta::default()
            },
            created_at: at,
            updated_at: at + TimeDelta::days(i),
        })
        .collect()
}

#[test]
fn the_frame_has_the_schema_columns_and_types_in_order() {
    let frame = rows_to_frame(&rows(3)).unwrap();
    let names: Vec<&str> = frame
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect();
    // Every column but the partition key, whose value is in the path.
    assert_eq!(names, &COLUMNS[1..]);
    assert!(MARKET_DATA[0].partition && MARKET_DATA[0].name == "ticker");
    for column in MARKET_DATA.iter().skip(1) {
        let series = frame.column(column.name).unwrap();
        let ok = match column.ty {
            ColumnType::Ticker | ColumnType::Text => series.dtype() == &DataType::String,
            ColumnType::Date => series.dtype() == &DataType::Date,
            ColumnType::Float => series.dtype() == &DataType::Float64,
            ColumnType::Int => series.dtype() == &DataType::Int64,
            ColumnType::Timestamp => matches!(series.dtype(), DataType::Datetime(_, Some(_))),
        };
        assert!(ok, "{} is {:?}", column.name, series.dtype());
    }
}

#[test]
fn every_codec_reads_back_bit_for_bit() {
    let original = rows(4);
    for codec in [
        ParquetCompression::Snappy,
        ParquetCompression::Zstd,
        ParquetCompression::Gzip,
        ParquetCompression::None,
    ] {
        let back = decode_parquet(&encode_parquet(&original, codec).unwrap(), "^GSPC").unwrap();
        assert_eq!(back, original, "{codec:?}");
        for (a, b) in back.iter().zip(&original) {
            assert!(a.same_values(b), "{codec:?}");
            assert!(a.indicators.rsi.unwrap().is_sign_negative(), "-0.0 kept");
        }
    }
    assert!(
        decode_parquet(
            &encode_parquet::<CuratedRow>(&[], ParquetCompression::Snappy).unwrap(),
            "^GSPC"
        )
        .unwrap()
        .is_empty()
    );
}

#[test]
fn files_of_the_earlier_layout_with_a_ticker_column_still_read() {
    let original = rows(3);
    let mut frame = rows_to_frame(&original).unwrap();
    let ticker = polars::prelude::Column::new("ticker".into(), vec!["^GSPC"; 3]);
    frame.insert_column(0, ticker).unwrap();
    let mut buf = Vec::new();
    polars::prelude::ParquetWriter::new(&mut buf)
        .finish(&mut frame)
        .unwrap();
    // The file's own ticker wins...
    assert_eq!(decode_parquet(&buf, "^GSPC").unwrap(), original);
    let back = decode_parquet(&buf, "OTHER").unwrap();
    assert!(back.iter().all(|r| r.ticker == "^GSPC"));

    // ...and a partition holding another ticker's rows is never read as its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = mdp_core::Lake::new(std::sync::Arc::new(mdp_core::LocalStore::new(dir.path())));
    let msft = mdp_core::Ticker::parse("MSFT").unwrap();
    let key = mdp_core::Lake::curated_key(&msft, 2023);
    runtime.block_on(async {
        lake.store().put(&key, buf).await.unwrap();
        let err = mdp_lake::read_partition(&lake, &msft, &key)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("holds a row of ^GSPC"), "{err}");
        assert_eq!(err.class(), mdp_core::ErrorClass::Permanent);
    });
}

#[test]
fn files_that_are_not_curated_partitions_are_refused_by_name() {
    assert!(matches!(
        decode_parquet(b"not parquet at all", "^GSPC"),
        Err(ParquetError::Decode(_))
    ));
    let bytes = encode_parquet(&rows(3), ParquetCompression::Snappy).unwrap();
    // Truncated files: an error, never a panic.
    for cut in [0, 4, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            decode_parquet(&bytes[..cut], "^GSPC").is_err(),
            "cut at {cut}"
        );
    }
    // A file without the volume column names it.
    let mut frame = rows_to_frame(&rows(2)).unwrap().drop("volume").unwrap();
    let mut buf = Vec::new();
    polars::prelude::ParquetWriter::new(&mut buf)
        .finish(&mut frame)
        .unwrap();
    let err = decode_parquet(&buf, "^GSPC").unwrap_err();
    assert!(
        matches!(
            err,
            ParquetError::Column {
                column: "volume",
                ..
            }
        ),
        "{err}"
    );
}
