//! The curated row schema, defined once (DESIGN.md section 6): every column's
//! name, type, nullability and role, in contract order. The Parquet codec,
//! every warehouse dialect's DDL and statements, and the read-back used by
//! tests derive from [`MARKET_DATA`]; a new column is added here (and in
//! [`CuratedRow`]'s value list below) and nowhere else.

use chrono::{DateTime, NaiveDate, Utc};

use crate::row::{CuratedRow, DailyBar, Indicators, InstrumentMeta};

/// What a column holds; each codec and dialect maps it to its own type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// The ticker symbol: short text (at most 16 bytes in the warehouse).
    Ticker,
    /// A calendar date (Parquet DATE, SQL DATE).
    Date,
    /// A double (prices, indicators).
    Float,
    /// A 64-bit integer (volume).
    Int,
    /// UTF-8 text.
    Text,
    /// A UTC instant with microsecond precision.
    Timestamp,
}

/// Why a column is there; decides what a load compares and rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Part of the unique key (ticker, date).
    Key,
    /// The bar as the chart API gives it.
    Bar,
    /// A section 5 indicator.
    Indicator,
    /// Instrument meta of the response that brought the bar.
    Meta,
    /// When the row first appeared (kept by every rewrite).
    CreatedAt,
    /// When the row's values last changed.
    UpdatedAt,
}

/// One column of the curated row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
    pub role: Role,
    /// A Hive partition key of the lake: its value is in the path
    /// (`ticker=AAPL/`), not in the curated files (DESIGN.md section 4).
    pub partition: bool,
}

impl Column {
    /// A column whose change makes a load rewrite the row: every value but
    /// the key and the two timestamps.
    pub fn is_compared(&self) -> bool {
        matches!(self.role, Role::Bar | Role::Indicator | Role::Meta)
    }

    /// A column an update of an existing row sets: the compared ones and `updated_at`.
    pub fn is_updated(&self) -> bool {
        self.is_compared() || self.role == Role::UpdatedAt
    }
}

const fn col(name: &'static str, ty: ColumnType, nullable: bool, role: Role) -> Column {
    Column {
        name,
        ty,
        nullable,
        role,
        partition: false,
    }
}

const fn price(name: &'static str) -> Column {
    col(name, ColumnType::Float, true, Role::Bar)
}

const fn indicator(name: &'static str) -> Column {
    col(name, ColumnType::Float, true, Role::Indicator)
}

const fn meta(name: &'static str, ty: ColumnType) -> Column {
    col(name, ty, true, Role::Meta)
}

/// Number of columns of the curated row.
pub const WIDTH: usize = 32;

/// The curated row, in contract order (DESIGN.md section 6).
pub const MARKET_DATA: [Column; WIDTH] = [
    Column {
        partition: true,
        ..col("ticker", ColumnType::Ticker, false, Role::Key)
    },
    col("date", ColumnType::Date, false, Role::Key),
    price("open"),
    price("high"),
    price("low"),
    col("close", ColumnType::Float, false, Role::Bar),
    price("adj_close"),
    col("volume", ColumnType::Int, true, Role::Bar),
    indicator("sma_7"),
    indicator("sma_14"),
    indicator("sma_20"),
    indicator("ema_12"),
    indicator("macd"),
    indicator("macd_signal"),
    indicator("macd_histogram"),
    indicator("rsi"),
    indicator("bb_upper"),
    indicator("bb_middle"),
    indicator("bb_lower"),
    indicator("volatility_20d"),
    indicator("daily_return"),
    indicator("daily_return_pct"),
    meta("currency", ColumnType::Text),
    meta("exchange", ColumnType::Text),
    meta("instrument_type", ColumnType::Text),
    meta("regular_market_price", ColumnType::Float),
    meta("fifty_two_week_high", ColumnType::Float),
    meta("fifty_two_week_low", ColumnType::Float),
    meta("long_name", ColumnType::Text),
    meta("short_name", ColumnType::Text),
    col("created_at", ColumnType::Timestamp, false, Role::CreatedAt),
    col("updated_at", ColumnType::Timestamp, false, Role::UpdatedAt),
];

/// Column names in contract order.
pub const COLUMNS: [&str; WIDTH] = {
    let mut names = [""; WIDTH];
    let mut i = 0;
    while i < WIDTH {
        names[i] = MARKET_DATA[i].name;
        i += 1;
    }
    names
};

/// Number of indicator columns.
pub const INDICATOR_COUNT: usize = 14;

/// Names of the indicator columns, in contract order.
pub const INDICATOR_COLUMNS: [&str; INDICATOR_COUNT] = {
    let mut names = [""; INDICATOR_COUNT];
    let (mut i, mut k) = (0, 0);
    while i < WIDTH {
        if matches!(MARKET_DATA[i].role, Role::Indicator) {
            names[k] = MARKET_DATA[i].name;
            k += 1;
        }
        i += 1;
    }
    names
};

/// The columns a curated Parquet file holds: all but the partition keys.
pub fn file_columns() -> impl Iterator<Item = &'static Column> {
    MARKET_DATA.iter().filter(|c| !c.partition)
}

/// Columns a load compares to decide whether a stored row changed.
pub fn compared_columns() -> impl Iterator<Item = &'static Column> {
    MARKET_DATA.iter().filter(|c| c.is_compared())
}

/// Columns an update of an existing row sets.
pub fn updated_columns() -> impl Iterator<Item = &'static Column> {
    MARKET_DATA.iter().filter(|c| c.is_updated())
}

/// The index of a column by name.
pub fn position(name: &str) -> Option<usize> {
    COLUMNS.iter().position(|c| *c == name)
}

/// One column's value of a row, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Text(Option<&'a str>),
    Date(NaiveDate),
    Float(Option<f64>),
    Int(Option<i64>),
    Timestamp(DateTime<Utc>),
}

/// One column's value read back from a file or a table.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    Text(Option<String>),
    Date(NaiveDate),
    Float(Option<f64>),
    Int(Option<i64>),
    Timestamp(DateTime<Utc>),
}

impl OwnedValue {
    fn type_name(&self) -> &'static str {
        match self {
            OwnedValue::Text(_) => "text",
            OwnedValue::Date(_) => "date",
            OwnedValue::Float(_) => "float",
            OwnedValue::Int(_) => "integer",
            OwnedValue::Timestamp(_) => "timestamp",
        }
    }
}

/// A list of values that is not a curated row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("column {column} holds a {found} value, expected {expected:?}")]
    WrongType {
        column: &'static str,
        found: &'static str,
        expected: ColumnType,
    },
    #[error("column {column} is NULL, which it never may be")]
    Null { column: &'static str },
    #[error("expected {WIDTH} columns, got {0}")]
    Width(usize),
}

impl CuratedRow {
    /// The row's values in [`MARKET_DATA`] order.
    pub fn values(&self) -> [Value<'_>; WIDTH] {
        let b = &self.bar;
        let i = self.indicators.values();
        let m = &self.meta;
        let f = Value::Float;
        [
            Value::Text(Some(&self.ticker)),
            Value::Date(b.date),
            f(b.open),
            f(b.high),
            f(b.low),
            f(Some(b.close)),
            f(b.adj_close),
            Value::Int(b.volume),
            f(i[0]),
            f(i[1]),
            f(i[2]),
            f(i[3]),
            f(i[4]),
            f(i[5]),
            f(i[6]),
            f(i[7]),
            f(i[8]),
            f(i[9]),
            f(i[10]),
            f(i[11]),
            f(i[12]),
            f(i[13]),
            Value::Text(m.currency.as_deref()),
            Value::Text(m.exchange.as_deref()),
            Value::Text(m.instrument_type.as_deref()),
            f(m.regular_market_price),
            f(m.fifty_two_week_high),
            f(m.fifty_two_week_low),
            Value::Text(m.long_name.as_deref()),
            Value::Text(m.short_name.as_deref()),
            Value::Timestamp(self.created_at),
            Value::Timestamp(self.updated_at),
        ]
    }

    /// Builds a row from values in [`MARKET_DATA`] order, each of its
    /// column's type; a NULL in a column that cannot hold one is an error.
    pub fn from_values(
        values: impl IntoIterator<Item = OwnedValue>,
    ) -> Result<CuratedRow, SchemaError> {
        let mut r = ValueReader {
            values: values.into_iter(),
            index: 0,
        };
        let ticker = r.required_text()?;
        let date = r.date()?;
        let open = r.float()?;
        let high = r.float()?;
        let low = r.float()?;
        let close = r.required_float()?;
        let adj_close = r.float()?;
        let volume = r.int()?;
        let mut indicators = [None; INDICATOR_COUNT];
        for slot in &mut indicators {
            *slot = r.float()?;
        }
        let meta = InstrumentMeta {
            currency: r.text()?,
            exchange: r.text()?,
            instrument_type: r.text()?,
            regular_market_price: r.float()?,
            fifty_two_week_high: r.float()?,
            fifty_two_week_low: r.float()?,
            long_name: r.text()?,
            short_name: r.text()?,
        };
        let created_at = r.timestamp()?;
        let updated_at = r.timestamp()?;
        r.finish()?;
        Ok(CuratedRow {
            ticker,
            bar: DailyBar {
                date,
                open,
                high,
                low,
                close,
                adj_close,
                volume,
            },
            indicators: Indicators::from_values(indicators),
            meta,
            created_at,
            updated_at,
        })
    }
}

/// Reads values in schema order, checking each against its column.
struct ValueReader<I> {
    values: I,
    index: usize,
}

impl<I: Iterator<Item = OwnedValue>> ValueReader<I> {
    fn next(&mut self) -> Result<(&'static Column, OwnedValue), SchemaError> {
        let column = MARKET_DATA
            .get(self.index)
            .ok_or(SchemaError::Width(self.index + 1))?;
        let value = self.values.next().ok_or(SchemaError::Width(self.index))?;
        self.index += 1;
        Ok((column, value))
    }

    fn finish(mut self) -> Result<(), SchemaError> {
        match self.values.next() {
            None => Ok(()),
            Some(_) => Err(SchemaError::Width(WIDTH + 1 + self.values.count())),
        }
    }

    fn wrong(column: &'static Column, value: &OwnedValue) -> SchemaError {
        SchemaError::WrongType {
            column: column.name,
            found: value.type_name(),
            expected: column.ty,
        }
    }

    fn text(&mut self) -> Result<Option<String>, SchemaError> {
        match self.next()? {
            (_, OwnedValue::Text(v)) => Ok(v),
            (c, v) => Err(Self::wrong(c, &v)),
        }
    }

    fn required_text(&mut self) -> Result<String, SchemaError> {
        let column = MARKET_DATA[self.index.min(WIDTH - 1)].name;
        self.text()?.ok_or(SchemaError::Null { column })
    }

    fn date(&mut self) -> Result<NaiveDate, SchemaError> {
        match self.next()? {
            (_, OwnedValue::Date(v)) => Ok(v),
            (c, v) => Err(Self::wrong(c, &v)),
        }
    }

    fn float(&mut self) -> Result<Option<f64>, SchemaError> {
        match self.next()? {
            (_, OwnedValue::Float(v)) => Ok(v),
            (c, v) => Err(Self::wrong(c, &v)),
        }
    }

    fn required_float(&mut self) -> Result<f64, SchemaError> {
        let column = MARKET_DATA[self.index.min(WIDTH - 1)].name;
        self.float()?.ok_or(SchemaError::Null { column })
    }

    fn int(&mut self) -> Result<Option<i64>, SchemaError> {
        match self.next()? {
            (_, OwnedValue::Int(v)) => Ok(v),
            (c, v) => Err(Self::wrong(c, &v)),
        }
    }

    fn timestamp(&mut self) -> Result<DateTime<Utc>, SchemaError> {
        match self.next()? {
            (_, OwnedValue::Timestamp(v)) => Ok(v),
            (c, v) => Err(Self::wrong(c, &v)),
        }
    }
}

impl Value<'_> {
    /// The owned copy of the value.
    pub fn to_owned_value(&self) -> OwnedValue {
        match *self {
            Value::Text(s) => OwnedValue::Text(s.map(str::to_string)),
            Value::Date(d) => OwnedValue::Date(d),
            Value::Float(f) => OwnedValue::Float(f),
            Value::Int(i) => OwnedValue::Int(i),
            Value::Timestamp(t) => OwnedValue::Timestamp(t),
        }
    }

    /// The type of column this value belongs in (text fits Ticker and Text).
    pub fn fits(&self, ty: ColumnType) -> bool {
        matches!(
            (self, ty),
            (Value::Text(_), ColumnType::Ticker | ColumnType::Text)
                | (Value::Date(_), ColumnType::Date)
                | (Value::Float(_), ColumnType::Float)
                | (Value::Int(_), ColumnType::Int)
                | (Value::Timestamp(_), ColumnType::Timestamp)
        )
    }

    pub fn is_null(&self) -> bool {
        matches!(
            self,
            Value::Text(None) | Value::Float(None) | Value::Int(None)
        )
    }
}
