//! The one row schema: its columns are the contract's, and a row's values
//! follow it both ways.

use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use mdp_core::row::DailyBar;
use mdp_core::schema::{
    COLUMNS, ColumnType, INDICATOR_COLUMNS, MARKET_DATA, OwnedValue, Role, SchemaError, WIDTH,
    compared_columns, updated_columns,
};
use mdp_core::{CuratedRow, Indicators, InstrumentMeta};

/// DESIGN.md section 6, copied by hand: the order is a contract.
const CONTRACT: &str = "ticker, date, open, high, low, close, adj_close, volume, \
    sma_7, sma_14, sma_20, ema_12, macd, macd_signal, macd_histogram, rsi, \
    bb_upper, bb_middle, bb_lower, volatility_20d, daily_return, daily_return_pct, \
    currency, exchange, instrument_type, regular_market_price, \
    fifty_two_week_high, fifty_two_week_low, long_name, short_name, \
    created_at, updated_at";

fn sample() -> CuratedRow {
    let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    CuratedRow {
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
        // Each indicator a distinct value, so a swapped pair would show.
        indicators: Indicators {
            sma_7: Some(0.5),
            sma_14: Some(1.5),
            sma_20: Some(2.5),
            ema_12: Some(3.5),
            macd: Some(4.5),
            macd_signal: Some(5.5),
            macd_histogram: Some(6.5),
            rsi: Some(7.5),
            bb_upper: Some(8.5),
            bb_middle: Some(9.5),
            bb_lower: Some(10.5),
            volatility_20d: Some(11.5),
            daily_return: Some(12.5),
            daily_return_pct: Some(13.5),
        },
        meta: InstrumentMeta {
            currency: Some("USD".into()),
            short_name: Some("Microsoft".into()),
            fifty_two_week_low: Some(3.0),
            ..InstrumentMeta::default()
        },
        created_at: at,
        updated_at: at + TimeDelta::microseconds(1),
    }
}

#[test]
fn the_schema_is_the_contract() {
    let contract: Vec<&str> = CONTRACT.split(", ").collect();
    assert_eq!(COLUMNS.to_vec(), contract);
    assert_eq!(WIDTH, 32);
    for column in MARKET_DATA {
        let expected = match column.name {
            "ticker" => ColumnType::Ticker,
            "date" => ColumnType::Date,
            "volume" => ColumnType::Int,
            "currency" | "exchange" | "instrument_type" | "long_name" | "short_name" => {
                ColumnType::Text
            }
            "created_at" | "updated_at" => ColumnType::Timestamp,
            _ => ColumnType::Float,
        };
        assert_eq!(column.ty, expected, "{}", column.name);
        let required = matches!(
            column.name,
            "ticker" | "date" | "close" | "created_at" | "updated_at"
        );
        assert_eq!(column.nullable, !required, "{}", column.name);
    }
    assert_eq!(&COLUMNS[8..22], &INDICATOR_COLUMNS[..]);
    let keys: Vec<&str> = MARKET_DATA
        .iter()
        .filter(|c| c.role == Role::Key)
        .map(|c| c.name)
        .collect();
    assert_eq!(keys, ["ticker", "date"]);
    // Compared: all but the key and the two timestamps; updated adds updated_at.
    let compared: Vec<&str> = compared_columns().map(|c| c.name).collect();
    assert_eq!(compared, &COLUMNS[2..30]);
    let updated: Vec<&str> = updated_columns().map(|c| c.name).collect();
    assert_eq!(updated, [&COLUMNS[2..30], &["updated_at"][..]].concat());
}

#[test]
fn values_follow_the_schema_and_come_back_to_the_same_row() {
    let row = sample();
    let values = row.values();
    for (value, column) in values.iter().zip(MARKET_DATA.iter()) {
        assert!(value.fits(column.ty), "{} holds {value:?}", column.name);
        if !column.nullable {
            assert!(!value.is_null(), "{}", column.name);
        }
    }
    // Indicators land in their own named columns (the struct fields above
    // are named, in the column order of DESIGN.md: k + 0.5 for the k-th).
    for (k, name) in INDICATOR_COLUMNS.iter().enumerate() {
        let i = COLUMNS.iter().position(|c| c == name).unwrap();
        assert_eq!(
            values[i],
            mdp_core::schema::Value::Float(Some(k as f64 + 0.5)),
            "{name}"
        );
    }
    let owned: Vec<OwnedValue> = values.iter().map(|v| v.to_owned_value()).collect();
    let back = CuratedRow::from_values(owned).unwrap();
    assert_eq!(back, row);
    assert!(back.same_values(&row));
}

#[test]
fn values_that_are_not_a_row_are_named() {
    let mut owned: Vec<OwnedValue> = sample()
        .values()
        .iter()
        .map(|v| v.to_owned_value())
        .collect();
    owned[5] = OwnedValue::Float(None);
    assert_eq!(
        CuratedRow::from_values(owned.clone()).unwrap_err(),
        SchemaError::Null { column: "close" }
    );
    owned[5] = OwnedValue::Int(Some(1));
    let err = CuratedRow::from_values(owned.clone()).unwrap_err();
    assert!(
        err.to_string().contains("column close holds a integer"),
        "{err}"
    );
    owned.pop();
    owned[5] = OwnedValue::Float(Some(1.0));
    assert_eq!(
        CuratedRow::from_values(owned.clone()).unwrap_err(),
        SchemaError::Width(31)
    );
    owned.push(OwnedValue::Timestamp(Utc::now()));
    owned.push(OwnedValue::Int(None));
    assert_eq!(
        CuratedRow::from_values(owned).unwrap_err(),
        SchemaError::Width(33)
    );
}

#[test]
fn same_values_ignores_only_the_timestamps() {
    let a = sample();
    let mut b = a.clone();
    b.created_at += TimeDelta::days(1);
    b.updated_at += TimeDelta::days(1);
    assert!(a.same_values(&b));
    for change in 0..4 {
        let mut c = a.clone();
        match change {
            0 => c.bar.open = Some(1.0),
            1 => c.indicators.rsi = Some(-0.0),
            2 => c.meta.long_name = Some("x".into()),
            _ => c.bar.date = c.bar.date.succ_opt().unwrap(),
        }
        assert!(!a.same_values(&c), "change {change}");
    }
    // -0.0 and 0.0 are different bits: a rewrite, never a silent loss.
    let mut z = a.clone();
    z.indicators.rsi = Some(0.0);
    let mut nz = a.clone();
    nz.indicators.rsi = Some(-0.0);
    assert!(!z.same_values(&nz));
}
