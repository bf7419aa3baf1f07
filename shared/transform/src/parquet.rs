//! Curated rows ↔ Parquet (DESIGN.md section 4): every column of section 6 in
//! its order; `date` a Parquet DATE, `volume` INT64, prices and indicators
//! DOUBLE, text UTF8, `created_at`/`updated_at` UTC microsecond timestamps.

use std::io::Cursor;

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::config::ParquetCompression;
use mdp_core::row::{COLUMNS, DailyBar, INDICATOR_COLUMNS};
use mdp_core::{CuratedRow, Indicators, InstrumentMeta};
use polars::prelude::*;

const UNIX_EPOCH_DAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("encoding Parquet: {0}")]
    Encode(PolarsError),
    #[error("decoding Parquet: {0}")]
    Decode(PolarsError),
    #[error("Parquet file is not a curated partition: {0}")]
    Shape(String),
}

fn timestamp_type() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
}

/// The curated frame: one column per contract column, in contract order.
pub fn rows_to_frame(rows: &[CuratedRow]) -> PolarsResult<DataFrame> {
    let f64_col = |name: &str, get: &dyn Fn(&CuratedRow) -> Option<f64>| {
        Column::new(
            name.into(),
            rows.iter().map(get).collect::<Vec<Option<f64>>>(),
        )
    };
    let str_col = |name: &str, get: &dyn Fn(&CuratedRow) -> Option<&str>| {
        Column::new(
            name.into(),
            rows.iter().map(get).collect::<Vec<Option<&str>>>(),
        )
    };
    let days: Vec<i32> = rows
        .iter()
        .map(|r| (r.bar.date - UNIX_EPOCH_DAY).num_days() as i32)
        .collect();
    let micros = |get: &dyn Fn(&CuratedRow) -> DateTime<Utc>| -> PolarsResult<Column> {
        let values: Vec<i64> = rows.iter().map(|r| get(r).timestamp_micros()).collect();
        Column::new("ts".into(), values).cast(&timestamp_type())
    };

    let mut columns = vec![
        str_col("ticker", &|r| Some(r.ticker.as_str())),
        Column::new("date".into(), days).cast(&DataType::Date)?,
        f64_col("open", &|r| r.bar.open),
        f64_col("high", &|r| r.bar.high),
        f64_col("low", &|r| r.bar.low),
        f64_col("close", &|r| Some(r.bar.close)),
        f64_col("adj_close", &|r| r.bar.adj_close),
        Column::new(
            "volume".into(),
            rows.iter()
                .map(|r| r.bar.volume)
                .collect::<Vec<Option<i64>>>(),
        ),
    ];
    for (k, name) in INDICATOR_COLUMNS.iter().enumerate() {
        columns.push(f64_col(name, &|r| r.indicators.values()[k]));
    }
    columns.extend([
        str_col("currency", &|r| r.meta.currency.as_deref()),
        str_col("exchange", &|r| r.meta.exchange.as_deref()),
        str_col("instrument_type", &|r| r.meta.instrument_type.as_deref()),
        f64_col("regular_market_price", &|r| r.meta.regular_market_price),
        f64_col("fifty_two_week_high", &|r| r.meta.fifty_two_week_high),
        f64_col("fifty_two_week_low", &|r| r.meta.fifty_two_week_low),
        str_col("long_name", &|r| r.meta.long_name.as_deref()),
        str_col("short_name", &|r| r.meta.short_name.as_deref()),
        micros(&|r| r.created_at)?.with_name("created_at".into()),
        micros(&|r| r.updated_at)?.with_name("updated_at".into()),
    ]);
    debug_assert_eq!(columns.len(), COLUMNS.len());
    DataFrame::new(rows.len(), columns)
}

/// Encodes rows as one Parquet file.
pub fn encode_parquet(
    rows: &[CuratedRow],
    compression: ParquetCompression,
) -> Result<Vec<u8>, ParquetError> {
    let mut frame = rows_to_frame(rows).map_err(ParquetError::Encode)?;
    let codec = match compression {
        ParquetCompression::Snappy => polars::prelude::ParquetCompression::Snappy,
        ParquetCompression::Zstd => polars::prelude::ParquetCompression::Zstd(None),
        ParquetCompression::Gzip => polars::prelude::ParquetCompression::Gzip(None),
        ParquetCompression::None => polars::prelude::ParquetCompression::Uncompressed,
    };
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .with_compression(codec)
        .finish(&mut frame)
        .map_err(ParquetError::Encode)?;
    Ok(buf)
}

/// Decodes a curated Parquet file written by [`encode_parquet`] (or any file
/// with the contract columns and types).
pub fn decode_parquet(bytes: &[u8]) -> Result<Vec<CuratedRow>, ParquetError> {
    let frame = ParquetReader::new(Cursor::new(bytes))
        .finish()
        .map_err(ParquetError::Decode)?;
    frame_to_rows(&frame)
}

pub fn frame_to_rows(frame: &DataFrame) -> Result<Vec<CuratedRow>, ParquetError> {
    let shape = |e: PolarsError| ParquetError::Shape(e.to_string());
    let col = |name: &str| frame.column(name).map_err(shape);
    let f64s = |name: &str| -> Result<Vec<Option<f64>>, ParquetError> {
        Ok(col(name)?.f64().map_err(shape)?.iter().collect())
    };
    let strs = |name: &str| -> Result<Vec<Option<String>>, ParquetError> {
        let c = col(name)?.cast(&DataType::String).map_err(shape)?;
        Ok(c.str()
            .map_err(shape)?
            .iter()
            .map(|s| s.map(str::to_string))
            .collect())
    };
    let micros = |name: &str| -> Result<Vec<Option<i64>>, ParquetError> {
        let c = col(name)?.cast(&timestamp_type()).map_err(shape)?;
        Ok(c.datetime().map_err(shape)?.physical().iter().collect())
    };
    let dates: Vec<Option<i32>> = col("date")?
        .date()
        .map_err(shape)?
        .physical()
        .iter()
        .collect();
    let volume: Vec<Option<i64>> = col("volume")?.i64().map_err(shape)?.iter().collect();
    let tickers = strs("ticker")?;
    let (open, high, low, close, adj) = (
        f64s("open")?,
        f64s("high")?,
        f64s("low")?,
        f64s("close")?,
        f64s("adj_close")?,
    );
    let indicators: Vec<Vec<Option<f64>>> = INDICATOR_COLUMNS
        .iter()
        .map(|c| f64s(c))
        .collect::<Result<_, _>>()?;
    let (currency, exchange, itype) = (
        strs("currency")?,
        strs("exchange")?,
        strs("instrument_type")?,
    );
    let (rmp, high52, low52) = (
        f64s("regular_market_price")?,
        f64s("fifty_two_week_high")?,
        f64s("fifty_two_week_low")?,
    );
    let (long_name, short_name) = (strs("long_name")?, strs("short_name")?);
    let (created, updated) = (micros("created_at")?, micros("updated_at")?);

    let missing = |what: &str, i: usize| ParquetError::Shape(format!("row {i} has no {what}"));
    let to_time = |us: Option<i64>, what: &str, i: usize| {
        us.and_then(DateTime::<Utc>::from_timestamp_micros)
            .ok_or_else(|| missing(what, i))
    };
    (0..frame.height())
        .map(|i| {
            let mut values = [None; 14];
            for (k, v) in values.iter_mut().enumerate() {
                *v = indicators[k][i];
            }
            Ok(CuratedRow {
                ticker: tickers[i].clone().ok_or_else(|| missing("ticker", i))?,
                bar: DailyBar {
                    date: dates[i]
                        .and_then(|d| {
                            UNIX_EPOCH_DAY.checked_add_signed(chrono::Duration::days(d.into()))
                        })
                        .ok_or_else(|| missing("date", i))?,
                    open: open[i],
                    high: high[i],
                    low: low[i],
                    close: close[i].ok_or_else(|| missing("close", i))?,
                    adj_close: adj[i],
                    volume: volume[i],
                },
                indicators: Indicators::from_values(values),
                meta: InstrumentMeta {
                    currency: currency[i].clone(),
                    exchange: exchange[i].clone(),
                    instrument_type: itype[i].clone(),
                    regular_market_price: rmp[i],
                    fifty_two_week_high: high52[i],
                    fifty_two_week_low: low52[i],
                    long_name: long_name[i].clone(),
                    short_name: short_name[i].clone(),
                },
                created_at: to_time(created[i], "created_at", i)?,
                updated_at: to_time(updated[i], "updated_at", i)?,
            })
        })
        .collect()
}
