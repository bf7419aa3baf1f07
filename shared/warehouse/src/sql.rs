//! The warehouse columns (DESIGN.md section 6, order of [`COLUMNS`]): what
//! kind of value each holds, a curated row as a list of values in that order,
//! and the way back from values read out of a table.

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::row::{COLUMNS, DailyBar};
use mdp_core::{CuratedRow, Indicators, InstrumentMeta};

/// What a column holds; each backend maps it to its SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ticker,
    Date,
    Float,
    Int,
    Text,
    Timestamp,
}

const F: Kind = Kind::Float;

/// Kinds in [`COLUMNS`] order.
pub(crate) const KINDS: [Kind; 32] = [
    Kind::Ticker,
    Kind::Date,
    F, // open
    F, // high
    F, // low
    F, // close
    F, // adj_close
    Kind::Int,
    F, // sma_7
    F,
    F,
    F,
    F,
    F,
    F,
    F,
    F,
    F,
    F,
    F,
    F,
    F,          // daily_return_pct
    Kind::Text, // currency
    Kind::Text, // exchange
    Kind::Text, // instrument_type
    F,          // regular_market_price
    F,          // fifty_two_week_high
    F,          // fifty_two_week_low
    Kind::Text, // long_name
    Kind::Text, // short_name
    Kind::Timestamp,
    Kind::Timestamp,
];

/// Index of the first column after the key (ticker, date).
pub(crate) const FIRST_VALUE_COLUMN: usize = 2;
/// Index of `created_at`; `updated_at` follows it.
pub(crate) const CREATED_AT: usize = 30;

/// Columns whose change makes an upsert rewrite a row: all but the key and
/// the two timestamps.
pub(crate) fn compared_columns() -> &'static [&'static str] {
    &COLUMNS[FIRST_VALUE_COLUMN..CREATED_AT]
}

/// Columns an upsert sets on an existing row: all but the key and `created_at`.
pub(crate) fn updated_columns() -> impl Iterator<Item = &'static str> {
    COLUMNS[FIRST_VALUE_COLUMN..]
        .iter()
        .copied()
        .filter(|c| *c != "created_at")
}

/// `"a", "b", ...` with `prefix` before each name (e.g. `t.`).
pub(crate) fn column_list(columns: &[&str], prefix: &str) -> String {
    columns
        .iter()
        .map(|c| format!("{prefix}{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A double-quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One column's value of a row being loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Text(Option<&'a str>),
    Date(NaiveDate),
    Float(Option<f64>),
    Int(Option<i64>),
    Timestamp(DateTime<Utc>),
}

/// The row's values in [`COLUMNS`] order.
pub(crate) fn values(row: &CuratedRow) -> [Value<'_>; 32] {
    let b = &row.bar;
    let i = row.indicators.values();
    let m = &row.meta;
    let f = Value::Float;
    [
        Value::Text(Some(&row.ticker)),
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
        Value::Timestamp(row.created_at),
        Value::Timestamp(row.updated_at),
    ]
}

/// One column's value read back from a table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Owned {
    Text(Option<String>),
    Date(NaiveDate),
    Float(Option<f64>),
    Int(Option<i64>),
    Timestamp(DateTime<Utc>),
}

/// Builds a curated row from values in [`COLUMNS`] order, each of the kind
/// given by [`KINDS`].
pub(crate) fn row_from_values(values: Vec<Owned>) -> Result<CuratedRow, String> {
    if values.len() != COLUMNS.len() {
        return Err(format!(
            "expected {} columns, got {}",
            COLUMNS.len(),
            values.len()
        ));
    }
    let mut r = Reader {
        values: values.into_iter(),
        index: 0,
    };
    let ticker = r.text()?.ok_or("ticker is NULL")?;
    let date = r.date()?;
    let open = r.float()?;
    let high = r.float()?;
    let low = r.float()?;
    let close = r
        .float()?
        .ok_or_else(|| format!("close is NULL ({ticker} {date})"))?;
    let adj_close = r.float()?;
    let volume = r.int()?;
    let mut indicators = [None; 14];
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

struct Reader {
    values: std::vec::IntoIter<Owned>,
    index: usize,
}

impl Reader {
    fn next(&mut self) -> Result<(usize, Owned), String> {
        let i = self.index;
        self.index += 1;
        self.values
            .next()
            .map(|v| (i, v))
            .ok_or_else(|| format!("column {i} is missing"))
    }

    fn wrong(i: usize, v: Owned) -> String {
        let name = COLUMNS.get(i).copied().unwrap_or("?");
        format!(
            "column {name} holds {v:?}, expected a {:?} value",
            KINDS.get(i)
        )
    }

    fn text(&mut self) -> Result<Option<String>, String> {
        match self.next()? {
            (_, Owned::Text(v)) => Ok(v),
            (i, v) => Err(Self::wrong(i, v)),
        }
    }

    fn date(&mut self) -> Result<NaiveDate, String> {
        match self.next()? {
            (_, Owned::Date(v)) => Ok(v),
            (i, v) => Err(Self::wrong(i, v)),
        }
    }

    fn float(&mut self) -> Result<Option<f64>, String> {
        match self.next()? {
            (_, Owned::Float(v)) => Ok(v),
            (i, v) => Err(Self::wrong(i, v)),
        }
    }

    fn int(&mut self) -> Result<Option<i64>, String> {
        match self.next()? {
            (_, Owned::Int(v)) => Ok(v),
            (i, v) => Err(Self::wrong(i, v)),
        }
    }

    fn timestamp(&mut self) -> Result<DateTime<Utc>, String> {
        match self.next()? {
            (_, Owned::Timestamp(v)) => Ok(v),
            (i, v) => Err(Self::wrong(i, v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use mdp_core::row::INDICATOR_COLUMNS;

    use super::*;

    #[test]
    fn kinds_match_the_contract_columns() {
        assert_eq!(KINDS.len(), COLUMNS.len());
        for (i, name) in COLUMNS.iter().enumerate() {
            let expected = match *name {
                "ticker" => Kind::Ticker,
                "date" => Kind::Date,
                "volume" => Kind::Int,
                "currency" | "exchange" | "instrument_type" | "long_name" | "short_name" => {
                    Kind::Text
                }
                "created_at" | "updated_at" => Kind::Timestamp,
                _ => Kind::Float,
            };
            assert_eq!(KINDS[i], expected, "{name}");
        }
        assert_eq!(COLUMNS[CREATED_AT], "created_at");
        assert_eq!(&COLUMNS[8..22], &INDICATOR_COLUMNS[..]);
        assert_eq!(compared_columns().len(), 28);
        assert_eq!(updated_columns().count(), 29);
        assert!(updated_columns().any(|c| c == "updated_at"));
    }

    #[test]
    fn values_and_back_give_the_same_row() {
        use chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let row = CuratedRow {
            ticker: "MSFT".into(),
            bar: DailyBar {
                date: NaiveDate::from_ymd_opt(2025, 1, 2).unwrap(),
                open: None,
                high: Some(2.0),
                low: Some(0.5),
                close: 0.1 + 0.2,
                adj_close: Some(1e-300),
                volume: Some(42),
            },
            indicators: Indicators {
                rsi: Some(55.5),
                daily_return: Some(-0.25),
                ..Indicators::default()
            },
            meta: InstrumentMeta {
                currency: Some("USD".into()),
                long_name: None,
                short_name: Some("Microsoft".into()),
                fifty_two_week_low: Some(3.0),
                ..InstrumentMeta::default()
            },
            created_at: at,
            updated_at: at + chrono::TimeDelta::microseconds(1),
        };
        let owned: Vec<Owned> = values(&row)
            .into_iter()
            .map(|v| match v {
                Value::Text(s) => Owned::Text(s.map(str::to_string)),
                Value::Date(d) => Owned::Date(d),
                Value::Float(f) => Owned::Float(f),
                Value::Int(i) => Owned::Int(i),
                Value::Timestamp(t) => Owned::Timestamp(t),
            })
            .collect();
        for (i, v) in owned.iter().enumerate() {
            let kind = match v {
                Owned::Text(_) if i == 0 => Kind::Ticker,
                Owned::Text(_) => Kind::Text,
                Owned::Date(_) => Kind::Date,
                Owned::Float(_) => Kind::Float,
                Owned::Int(_) => Kind::Int,
                Owned::Timestamp(_) => Kind::Timestamp,
            };
            assert_eq!(kind, KINDS[i], "{}", COLUMNS[i]);
        }
        assert_eq!(row_from_values(owned).unwrap(), row);
        assert!(
            row_from_values(vec![Owned::Int(None); 32])
                .unwrap_err()
                .contains("column ticker")
        );
    }
}
