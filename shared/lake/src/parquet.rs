//! Curated rows ↔ Parquet, one column per column of `mdp_core::schema` but
//! the partition keys (their values are in the path, Hive style, so a reader
//! of the folder gets them with no conflict), in schema order and with the
//! Parquet type its [`ColumnType`] maps to: DATE for dates, INT64 for
//! integers, DOUBLE for floats, UTF8 for text and UTC microsecond
//! timestamps. The embedded Arrow schema says plain `string` (polars would
//! write `string_view`, which pyarrow cannot merge with a partition field
//! and older readers do not know), and every column chunk carries min/max
//! statistics, so readers prune by date. Files of the earlier layout, which
//! also held the ticker, are read too.

use std::borrow::Borrow;
use std::io::Cursor;

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::CuratedRow;
use mdp_core::config::ParquetCompression;
use mdp_core::schema::{
    self, ColumnType, MARKET_DATA, OwnedValue, SchemaError, Value, WIDTH, file_columns,
};
use polars::prelude::*;
use polars_parquet::write::{StatisticsOptions, schema_to_metadata_key};

const UNIX_EPOCH_DAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("encoding Parquet")]
    Encode(#[source] PolarsError),
    #[error("decoding Parquet")]
    Decode(#[source] PolarsError),
    #[error("corrupt Parquet file ({0})")]
    Corrupt(String),
    #[error("column {column} is missing or not of type {expected:?}")]
    Column {
        column: &'static str,
        expected: ColumnType,
        #[source]
        source: PolarsError,
    },
    #[error("row {row} is not a curated row")]
    Row {
        row: usize,
        #[source]
        source: SchemaError,
    },
    #[error("column {column} has {len} values for {height} rows")]
    Length {
        column: &'static str,
        len: usize,
        height: usize,
    },
    #[error("row {row}: {column} {why}")]
    Invalid {
        row: usize,
        column: &'static str,
        why: String,
    },
    #[error("row {row}: {column} is not a valid {expected:?}")]
    OutOfRange {
        row: usize,
        column: &'static str,
        expected: ColumnType,
    },
}

fn timestamp_type() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
}

/// The polars type a column is written as.
fn polars_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Ticker | ColumnType::Text => DataType::String,
        ColumnType::Date => DataType::Date,
        ColumnType::Float => DataType::Float64,
        ColumnType::Int => DataType::Int64,
        ColumnType::Timestamp => timestamp_type(),
    }
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    // NaiveDate spans ±262 143 years: the day count always fits an i32.
    (date - UNIX_EPOCH_DAY).num_days() as i32
}

/// The plain Arrow type a column type is written as (`string`, `date32`,
/// `double`, `int64`, `timestamp[us, UTC]`).
pub(crate) fn arrow_type(ty: ColumnType) -> ArrowDataType {
    match ty {
        ColumnType::Ticker | ColumnType::Text => ArrowDataType::Utf8,
        ColumnType::Date => ArrowDataType::Date32,
        ColumnType::Float => ArrowDataType::Float64,
        ColumnType::Int => ArrowDataType::Int64,
        ColumnType::Timestamp => {
            ArrowDataType::Timestamp(ArrowTimeUnit::Microsecond, Some("UTC".into()))
        }
    }
}

/// The Arrow schema embedded in the files: the file columns with plain
/// Arrow types.
fn file_arrow_schema() -> ArrowSchema {
    file_columns()
        .map(|column| {
            let dtype = arrow_type(column.ty);
            let name: PlSmallStr = column.name.into();
            (name.clone(), ArrowField::new(name, dtype, column.nullable))
        })
        .collect()
}

/// The curated frame: one column per file column, in schema order.
pub fn rows_to_frame<R: Borrow<CuratedRow>>(rows: &[R]) -> PolarsResult<DataFrame> {
    let values: Vec<[Value<'_>; WIDTH]> = rows.iter().map(|r| r.borrow().values()).collect();
    let columns = MARKET_DATA
        .iter()
        .enumerate()
        .filter(|(_, column)| !column.partition)
        .map(|(i, column)| {
            let name: PlSmallStr = column.name.into();
            let cells = values.iter().map(|row| row[i]);
            let series = match column.ty {
                ColumnType::Ticker | ColumnType::Text => Column::new(
                    name,
                    cells
                        .map(|v| match v {
                            Value::Text(s) => s,
                            _ => unreachable!("schema test: {} holds text", column.name),
                        })
                        .collect::<Vec<Option<&str>>>(),
                ),
                ColumnType::Date => Column::new(
                    name,
                    cells
                        .map(|v| match v {
                            Value::Date(d) => days_since_epoch(d),
                            _ => unreachable!("schema test: {} holds dates", column.name),
                        })
                        .collect::<Vec<i32>>(),
                ),
                ColumnType::Float => Column::new(
                    name,
                    cells
                        .map(|v| match v {
                            Value::Float(f) => f,
                            _ => unreachable!("schema test: {} holds floats", column.name),
                        })
                        .collect::<Vec<Option<f64>>>(),
                ),
                ColumnType::Int => Column::new(
                    name,
                    cells
                        .map(|v| match v {
                            Value::Int(n) => n,
                            _ => unreachable!("schema test: {} holds integers", column.name),
                        })
                        .collect::<Vec<Option<i64>>>(),
                ),
                ColumnType::Timestamp => Column::new(
                    name,
                    cells
                        .map(|v| match v {
                            Value::Timestamp(t) => t.timestamp_micros(),
                            _ => unreachable!("schema test: {} holds timestamps", column.name),
                        })
                        .collect::<Vec<i64>>(),
                ),
            };
            series.cast(&polars_type(column.ty))
        })
        .collect::<PolarsResult<Vec<Column>>>()?;
    DataFrame::new(rows.len(), columns)
}

/// Encodes rows as one Parquet file.
pub fn encode_parquet<R: Borrow<CuratedRow>>(
    rows: &[R],
    compression: ParquetCompression,
) -> Result<Vec<u8>, ParquetError> {
    let mut frame = rows_to_frame(rows).map_err(ParquetError::Encode)?;
    write_frame(&mut frame, &file_arrow_schema(), compression)
}

/// Writes a frame as one Parquet file whose embedded Arrow schema is
/// `arrow_schema` (plain `string` rather than polars' `string_view`).
pub(crate) fn write_frame(
    frame: &mut DataFrame,
    arrow_schema: &ArrowSchema,
    compression: ParquetCompression,
) -> Result<Vec<u8>, ParquetError> {
    let codec = match compression {
        ParquetCompression::Snappy => polars::prelude::ParquetCompression::Snappy,
        ParquetCompression::Zstd => polars::prelude::ParquetCompression::Zstd(None),
        ParquetCompression::Gzip => polars::prelude::ParquetCompression::Gzip(None),
        ParquetCompression::None => polars::prelude::ParquetCompression::Uncompressed,
    };
    let mut buf = Vec::new();
    // Our own `ARROW:schema` entry replaces the one polars would write.
    let arrow_schema = schema_to_metadata_key(arrow_schema);
    ParquetWriter::new(&mut buf)
        .with_compression(codec)
        // Min, max and null count on every column chunk (what readers prune
        // with); distinct counts would cost a hash of every value for nothing.
        .with_statistics(StatisticsOptions::default())
        .with_key_value_metadata(Some(KeyValueMetadata::Static(vec![arrow_schema])))
        .finish(frame)
        .map_err(ParquetError::Encode)?;
    Ok(buf)
}

/// Reads a Parquet file into a frame. polars panics on some corrupt files
/// (the property tests list where): a corrupt file is a refused file, not a
/// crashed process.
pub(crate) fn read_frame(bytes: &[u8]) -> Result<DataFrame, ParquetError> {
    std::panic::catch_unwind(|| ParquetReader::new(Cursor::new(bytes)).finish())
        .map_err(|panic| {
            ParquetError::Corrupt(
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "the Parquet reader gave up".into()),
            )
        })?
        .map_err(ParquetError::Decode)
}

/// Decodes a curated Parquet file of `ticker`'s partition, written by
/// [`encode_parquet`] (or any file with the schema's file columns and
/// types); a file of the earlier layout brings its own ticker column.
pub fn decode_parquet(bytes: &[u8], ticker: &str) -> Result<Vec<CuratedRow>, ParquetError> {
    let frame = read_frame(bytes)?;
    frame_to_rows(&frame, ticker)
}

/// One column of a frame, read as its schema type.
enum Cells {
    Text(Vec<Option<String>>),
    Date(Vec<Option<i32>>),
    Float(Vec<Option<f64>>),
    Int(Vec<Option<i64>>),
    Timestamp(Vec<Option<i64>>),
}

fn read_column(frame: &DataFrame, column: &'static schema::Column) -> Result<Cells, ParquetError> {
    let fail = |source: PolarsError| ParquetError::Column {
        column: column.name,
        expected: column.ty,
        source,
    };
    let c = frame.column(column.name).map_err(fail)?;
    Ok(match column.ty {
        ColumnType::Ticker | ColumnType::Text => {
            let c = c.cast(&DataType::String).map_err(fail)?;
            Cells::Text(
                c.str()
                    .map_err(fail)?
                    .iter()
                    .map(|s| s.map(str::to_string))
                    .collect(),
            )
        }
        ColumnType::Date => Cells::Date(c.date().map_err(fail)?.physical().iter().collect()),
        ColumnType::Float => Cells::Float(c.f64().map_err(fail)?.iter().collect()),
        ColumnType::Int => Cells::Int(c.i64().map_err(fail)?.iter().collect()),
        ColumnType::Timestamp => {
            let c = c.cast(&timestamp_type()).map_err(fail)?;
            Cells::Timestamp(c.datetime().map_err(fail)?.physical().iter().collect())
        }
    })
}

/// The rows of a curated frame of `ticker`'s partition (columns found by
/// name, so their order in the file does not matter; a partition key the
/// file does not hold is taken from the partition).
pub fn frame_to_rows(frame: &DataFrame, ticker: &str) -> Result<Vec<CuratedRow>, ParquetError> {
    let height = frame.height();
    let columns: Vec<Cells> = MARKET_DATA
        .iter()
        .map(|c| {
            if c.partition && frame.column(c.name).is_err() {
                Ok(Cells::Text(vec![Some(ticker.to_string()); height]))
            } else {
                read_column(frame, c)
            }
        })
        .collect::<Result<_, _>>()?;
    // A corrupt footer can make a column shorter than the frame (release
    // builds of polars do not check): refuse it rather than index past it.
    for (cells, column) in columns.iter().zip(MARKET_DATA.iter()) {
        let len = match cells {
            Cells::Text(v) => v.len(),
            Cells::Date(v) => v.len(),
            Cells::Float(v) => v.len(),
            Cells::Int(v) => v.len(),
            Cells::Timestamp(v) => v.len(),
        };
        if len != height {
            return Err(ParquetError::Length {
                column: column.name,
                len,
                height,
            });
        }
    }
    (0..frame.height())
        .map(|row| {
            let out_of_range = |column: &'static schema::Column| ParquetError::OutOfRange {
                row,
                column: column.name,
                expected: column.ty,
            };
            let null = |column: &'static schema::Column| ParquetError::Row {
                row,
                source: SchemaError::Null {
                    column: column.name,
                },
            };
            let mut values = Vec::with_capacity(WIDTH);
            for (cells, column) in columns.iter().zip(MARKET_DATA.iter()) {
                values.push(match cells {
                    Cells::Text(v) => OwnedValue::Text(v[row].clone()),
                    Cells::Float(v) => OwnedValue::Float(v[row]),
                    Cells::Int(v) => OwnedValue::Int(v[row]),
                    Cells::Date(v) => {
                        let days = v[row].ok_or_else(|| null(column))?;
                        OwnedValue::Date(
                            UNIX_EPOCH_DAY
                                .checked_add_signed(chrono::Duration::days(days.into()))
                                .ok_or_else(|| out_of_range(column))?,
                        )
                    }
                    Cells::Timestamp(v) => {
                        let micros = v[row].ok_or_else(|| null(column))?;
                        OwnedValue::Timestamp(
                            DateTime::<Utc>::from_timestamp_micros(micros)
                                .ok_or_else(|| out_of_range(column))?,
                        )
                    }
                });
            }
            CuratedRow::from_values(values).map_err(|source| ParquetError::Row { row, source })
        })
        .collect()
}
