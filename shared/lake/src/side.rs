//! The per-ticker files beside the curated market data: the ticker's
//! dividends and splits (`curated/corporate_actions/`), its soft-rule quality
//! findings (`quality/findings/`) and the bars a hard rule kept out of the
//! curated zone (`quarantine/market_data/`). One small Parquet file per
//! ticker and kind, holding the ticker's complete current set: the transform
//! rewrites it under the ticker's lock, the load reads it whole. Like the
//! curated files, the ticker is in the path (Hive style), not in a column.

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::config::ParquetCompression;
use mdp_core::quality::{
    ActionKind, CorporateAction, HardRule, QualityFinding, QuarantinedBar, SoftRule,
};
use mdp_core::row::DailyBar;
use mdp_core::schema::ColumnType;
use mdp_core::{Lake, Ticker};
use polars::prelude::*;

use crate::curated::CuratedError;
use crate::parquet::{ParquetError, arrow_type, read_frame, write_frame};

const UNIX_EPOCH_DAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// A column of a side file: its name, type and whether it may be null.
struct SideColumn(&'static str, ColumnType, bool);

const ACTION_COLUMNS: &[SideColumn] = &[
    SideColumn("date", ColumnType::Date, false),
    SideColumn("kind", ColumnType::Text, false),
    SideColumn("amount", ColumnType::Float, true),
    SideColumn("ratio", ColumnType::Float, true),
    SideColumn("numerator", ColumnType::Float, true),
    SideColumn("denominator", ColumnType::Float, true),
];

const FINDING_COLUMNS: &[SideColumn] = &[
    SideColumn("date", ColumnType::Date, false),
    SideColumn("rule", ColumnType::Text, false),
    SideColumn("detail", ColumnType::Text, false),
];

const QUARANTINE_COLUMNS: &[SideColumn] = &[
    SideColumn("date", ColumnType::Date, false),
    SideColumn("open", ColumnType::Float, true),
    SideColumn("high", ColumnType::Float, true),
    SideColumn("low", ColumnType::Float, true),
    SideColumn("close", ColumnType::Float, false),
    SideColumn("adj_close", ColumnType::Float, true),
    SideColumn("volume", ColumnType::Int, true),
    SideColumn("rules", ColumnType::Text, false),
    SideColumn("detail", ColumnType::Text, false),
    SideColumn("raw_key", ColumnType::Text, false),
    SideColumn("quarantined_at", ColumnType::Timestamp, false),
];

fn arrow_schema(columns: &[SideColumn]) -> ArrowSchema {
    columns
        .iter()
        .map(|SideColumn(name, ty, nullable)| {
            let name: PlSmallStr = (*name).into();
            (
                name.clone(),
                ArrowField::new(name, arrow_type(*ty), *nullable),
            )
        })
        .collect()
}

fn days(date: NaiveDate) -> i32 {
    (date - UNIX_EPOCH_DAY).num_days() as i32
}

fn date_column(name: &str, values: impl Iterator<Item = NaiveDate>) -> PolarsResult<Column> {
    Column::new(name.into(), values.map(days).collect::<Vec<i32>>()).cast(&DataType::Date)
}

fn float_column(name: &str, values: impl Iterator<Item = Option<f64>>) -> Column {
    Column::new(name.into(), values.collect::<Vec<Option<f64>>>())
}

fn text_column<'a>(name: &str, values: impl Iterator<Item = &'a str>) -> Column {
    Column::new(name.into(), values.collect::<Vec<&str>>())
}

fn encode(
    columns: &[SideColumn],
    height: usize,
    frame: PolarsResult<Vec<Column>>,
    compression: ParquetCompression,
) -> Result<Vec<u8>, ParquetError> {
    let mut frame = frame
        .and_then(|c| DataFrame::new(height, c))
        .map_err(ParquetError::Encode)?;
    write_frame(&mut frame, &arrow_schema(columns), compression)
}

/// The ticker's dividends and splits as one Parquet file.
pub fn encode_corporate_actions(
    actions: &[CorporateAction],
    compression: ParquetCompression,
) -> Result<Vec<u8>, ParquetError> {
    let columns = (|| {
        Ok(vec![
            date_column("date", actions.iter().map(|a| a.date))?,
            text_column("kind", actions.iter().map(|a| a.kind.code())),
            float_column("amount", actions.iter().map(|a| a.amount)),
            float_column("ratio", actions.iter().map(CorporateAction::ratio)),
            float_column("numerator", actions.iter().map(|a| a.numerator)),
            float_column("denominator", actions.iter().map(|a| a.denominator)),
        ])
    })();
    encode(ACTION_COLUMNS, actions.len(), columns, compression)
}

/// The ticker's quality findings as one Parquet file.
pub fn encode_quality_findings(
    findings: &[QualityFinding],
    compression: ParquetCompression,
) -> Result<Vec<u8>, ParquetError> {
    let columns = (|| {
        Ok(vec![
            date_column("date", findings.iter().map(|f| f.date))?,
            text_column("rule", findings.iter().map(|f| f.rule.code())),
            text_column("detail", findings.iter().map(|f| f.detail.as_str())),
        ])
    })();
    encode(FINDING_COLUMNS, findings.len(), columns, compression)
}

/// The comma-separated codes of a quarantined bar's rules.
pub fn rule_codes(rules: &[HardRule]) -> String {
    rules.iter().map(|r| r.code()).collect::<Vec<_>>().join(",")
}

/// The ticker's quarantined bars as one Parquet file.
pub fn encode_quarantine(
    bars: &[QuarantinedBar],
    compression: ParquetCompression,
) -> Result<Vec<u8>, ParquetError> {
    let rules: Vec<String> = bars.iter().map(|q| rule_codes(&q.rules)).collect();
    let columns = (|| {
        Ok(vec![
            date_column("date", bars.iter().map(|q| q.bar.date))?,
            float_column("open", bars.iter().map(|q| q.bar.open)),
            float_column("high", bars.iter().map(|q| q.bar.high)),
            float_column("low", bars.iter().map(|q| q.bar.low)),
            float_column("close", bars.iter().map(|q| Some(q.bar.close))),
            float_column("adj_close", bars.iter().map(|q| q.bar.adj_close)),
            Column::new(
                "volume".into(),
                bars.iter()
                    .map(|q| q.bar.volume)
                    .collect::<Vec<Option<i64>>>(),
            ),
            text_column("rules", rules.iter().map(String::as_str)),
            text_column("detail", bars.iter().map(|q| q.detail.as_str())),
            text_column("raw_key", bars.iter().map(|q| q.raw_key.as_str())),
            Column::new(
                "quarantined_at".into(),
                bars.iter()
                    .map(|q| q.quarantined_at.timestamp_micros())
                    .collect::<Vec<i64>>(),
            )
            .cast(&DataType::Datetime(
                TimeUnit::Microseconds,
                Some(TimeZone::UTC),
            ))?,
        ])
    })();
    encode(QUARANTINE_COLUMNS, bars.len(), columns, compression)
}

/// The columns of a decoded side file, each checked to be there, of its
/// type, as long as the frame, and without nulls where none may be.
struct Decoded<'a> {
    frame: &'a DataFrame,
}

impl Decoded<'_> {
    fn column(&self, name: &'static str, ty: ColumnType) -> Result<&Column, ParquetError> {
        let column = self
            .frame
            .column(name)
            .map_err(|source| ParquetError::Column {
                column: name,
                expected: ty,
                source,
            })?;
        if column.len() != self.frame.height() {
            return Err(ParquetError::Length {
                column: name,
                len: column.len(),
                height: self.frame.height(),
            });
        }
        Ok(column)
    }

    fn fail(name: &'static str, ty: ColumnType) -> impl Fn(PolarsError) -> ParquetError {
        move |source| ParquetError::Column {
            column: name,
            expected: ty,
            source,
        }
    }

    fn floats(&self, name: &'static str) -> Result<Vec<Option<f64>>, ParquetError> {
        let c = self.column(name, ColumnType::Float)?;
        Ok(c.f64()
            .map_err(Self::fail(name, ColumnType::Float))?
            .iter()
            .collect())
    }

    fn ints(&self, name: &'static str) -> Result<Vec<Option<i64>>, ParquetError> {
        let c = self.column(name, ColumnType::Int)?;
        Ok(c.i64()
            .map_err(Self::fail(name, ColumnType::Int))?
            .iter()
            .collect())
    }

    fn texts(&self, name: &'static str) -> Result<Vec<String>, ParquetError> {
        let fail = Self::fail(name, ColumnType::Text);
        let c = self
            .column(name, ColumnType::Text)?
            .cast(&DataType::String)
            .map_err(&fail)?;
        c.str()
            .map_err(&fail)?
            .iter()
            .enumerate()
            .map(|(row, s)| {
                s.map(str::to_string).ok_or(ParquetError::Invalid {
                    row,
                    column: name,
                    why: "is null".into(),
                })
            })
            .collect()
    }

    fn dates(&self, name: &'static str) -> Result<Vec<NaiveDate>, ParquetError> {
        let c = self.column(name, ColumnType::Date)?;
        c.date()
            .map_err(Self::fail(name, ColumnType::Date))?
            .physical()
            .iter()
            .enumerate()
            .map(|(row, d)| {
                d.and_then(|d| UNIX_EPOCH_DAY.checked_add_signed(chrono::Duration::days(d.into())))
                    .ok_or(ParquetError::OutOfRange {
                        row,
                        column: name,
                        expected: ColumnType::Date,
                    })
            })
            .collect()
    }

    fn timestamps(&self, name: &'static str) -> Result<Vec<DateTime<Utc>>, ParquetError> {
        let fail = Self::fail(name, ColumnType::Timestamp);
        let c = self
            .column(name, ColumnType::Timestamp)?
            .cast(&DataType::Datetime(
                TimeUnit::Microseconds,
                Some(TimeZone::UTC),
            ))
            .map_err(&fail)?;
        c.datetime()
            .map_err(&fail)?
            .physical()
            .iter()
            .enumerate()
            .map(|(row, t)| {
                t.and_then(DateTime::<Utc>::from_timestamp_micros)
                    .ok_or(ParquetError::OutOfRange {
                        row,
                        column: name,
                        expected: ColumnType::Timestamp,
                    })
            })
            .collect()
    }
}

fn invalid(row: usize, column: &'static str, why: impl Into<String>) -> ParquetError {
    ParquetError::Invalid {
        row,
        column,
        why: why.into(),
    }
}

pub fn decode_corporate_actions(bytes: &[u8]) -> Result<Vec<CorporateAction>, ParquetError> {
    let frame = read_frame(bytes)?;
    let d = Decoded { frame: &frame };
    let (dates, kinds) = (d.dates("date")?, d.texts("kind")?);
    let (amounts, numerators, denominators) = (
        d.floats("amount")?,
        d.floats("numerator")?,
        d.floats("denominator")?,
    );
    (0..frame.height())
        .map(|row| {
            let kind = ActionKind::from_code(&kinds[row])
                .ok_or_else(|| invalid(row, "kind", format!("{:?} is not a kind", kinds[row])))?;
            Ok(CorporateAction {
                date: dates[row],
                kind,
                amount: amounts[row],
                numerator: numerators[row],
                denominator: denominators[row],
            })
        })
        .collect()
}

pub fn decode_quality_findings(bytes: &[u8]) -> Result<Vec<QualityFinding>, ParquetError> {
    let frame = read_frame(bytes)?;
    let d = Decoded { frame: &frame };
    let (dates, rules, details) = (d.dates("date")?, d.texts("rule")?, d.texts("detail")?);
    (0..frame.height())
        .map(|row| {
            let rule = SoftRule::from_code(&rules[row])
                .ok_or_else(|| invalid(row, "rule", format!("{:?} is not a rule", rules[row])))?;
            Ok(QualityFinding {
                date: dates[row],
                rule,
                detail: details[row].clone(),
            })
        })
        .collect()
}

pub fn decode_quarantine(bytes: &[u8]) -> Result<Vec<QuarantinedBar>, ParquetError> {
    let frame = read_frame(bytes)?;
    let d = Decoded { frame: &frame };
    let dates = d.dates("date")?;
    let (open, high, low, close, adj) = (
        d.floats("open")?,
        d.floats("high")?,
        d.floats("low")?,
        d.floats("close")?,
        d.floats("adj_close")?,
    );
    let volume = d.ints("volume")?;
    let (rules, details, raw_keys) = (d.texts("rules")?, d.texts("detail")?, d.texts("raw_key")?);
    let at = d.timestamps("quarantined_at")?;
    (0..frame.height())
        .map(|row| {
            let parsed: Option<Vec<HardRule>> =
                rules[row].split(',').map(HardRule::from_code).collect();
            let parsed = parsed
                .filter(|r| !r.is_empty())
                .ok_or_else(|| invalid(row, "rules", format!("{:?} are not rules", rules[row])))?;
            Ok(QuarantinedBar {
                bar: DailyBar {
                    date: dates[row],
                    open: open[row],
                    high: high[row],
                    low: low[row],
                    close: close[row].ok_or_else(|| invalid(row, "close", "is null"))?,
                    adj_close: adj[row],
                    volume: volume[row],
                },
                rules: parsed,
                detail: details[row].clone(),
                raw_key: raw_keys[row].clone(),
                quarantined_at: at[row],
            })
        })
        .collect()
}

/// Reads one side file of the ticker; no file is an empty set.
async fn read_side<T>(
    lake: &Lake,
    ticker: &Ticker,
    key: String,
    decode: fn(&[u8]) -> Result<Vec<T>, ParquetError>,
) -> Result<Vec<T>, CuratedError> {
    let Some(bytes) = lake
        .store()
        .get(&key)
        .await
        .map_err(|source| CuratedError::Store {
            key: key.clone(),
            source,
        })?
    else {
        return Ok(Vec::new());
    };
    decode(&bytes).map_err(|source| CuratedError::Decode {
        key,
        ticker: ticker.to_string(),
        source: Box::new(source),
    })
}

/// The ticker's dividends and splits, by date.
pub async fn read_corporate_actions(
    lake: &Lake,
    ticker: &Ticker,
) -> Result<Vec<CorporateAction>, CuratedError> {
    read_side(
        lake,
        ticker,
        Lake::corporate_actions_key(ticker),
        decode_corporate_actions,
    )
    .await
}

/// The ticker's quality findings, by date.
pub async fn read_quality_findings(
    lake: &Lake,
    ticker: &Ticker,
) -> Result<Vec<QualityFinding>, CuratedError> {
    read_side(
        lake,
        ticker,
        Lake::quality_findings_key(ticker),
        decode_quality_findings,
    )
    .await
}

/// The ticker's quarantined bars, by date.
pub async fn read_quarantine(
    lake: &Lake,
    ticker: &Ticker,
) -> Result<Vec<QuarantinedBar>, CuratedError> {
    read_side(
        lake,
        ticker,
        Lake::quarantine_key(ticker),
        decode_quarantine,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn side_files_round_trip_bit_for_bit() {
        let actions = vec![
            CorporateAction {
                date: d("2020-08-31"),
                kind: ActionKind::Split,
                amount: None,
                numerator: Some(4.0),
                denominator: Some(1.0),
            },
            CorporateAction {
                date: d("2020-11-06"),
                kind: ActionKind::Dividend,
                amount: Some(0.205),
                numerator: None,
                denominator: None,
            },
        ];
        let bytes = encode_corporate_actions(&actions, ParquetCompression::Snappy).unwrap();
        assert_eq!(decode_corporate_actions(&bytes).unwrap(), actions);

        let findings = vec![QualityFinding {
            date: d("2024-12-24"),
            rule: SoftRule::MissingSession,
            detail: "no bar for the session of 2024-12-24 (ünïcode)".into(),
        }];
        let bytes = encode_quality_findings(&findings, ParquetCompression::Zstd).unwrap();
        assert_eq!(decode_quality_findings(&bytes).unwrap(), findings);

        let bars = vec![QuarantinedBar {
            bar: DailyBar {
                date: d("2025-01-02"),
                open: Some(f64::NAN),
                high: None,
                low: Some(-0.0),
                close: -1.0,
                adj_close: Some(1.0 / 3.0),
                volume: Some(-5),
            },
            rules: vec![HardRule::PriceNotPositive, HardRule::NegativeVolume],
            detail: "close -1 is not > 0; volume -5 is < 0".into(),
            raw_key: "raw/yahoo/chart/ticker=AAPL/2025-01-02_2025-01-02.json".into(),
            quarantined_at: DateTime::from_timestamp_micros(1_735_862_400_123_456).unwrap(),
        }];
        let bytes = encode_quarantine(&bars, ParquetCompression::None).unwrap();
        let back = decode_quarantine(&bytes).unwrap();
        assert_eq!(back.len(), 1);
        assert!(back[0].bar.open.unwrap().is_nan());
        assert_eq!(back[0].bar.low.unwrap().to_bits(), (-0.0f64).to_bits());
        assert_eq!(
            QuarantinedBar {
                bar: DailyBar {
                    open: None,
                    ..back[0].bar.clone()
                },
                ..back[0].clone()
            },
            QuarantinedBar {
                bar: DailyBar {
                    open: None,
                    ..bars[0].bar.clone()
                },
                ..bars[0].clone()
            }
        );
        // Empty sets are files too (a ticker whose findings all went away).
        let empty = encode_quality_findings(&[], ParquetCompression::Snappy).unwrap();
        assert!(decode_quality_findings(&empty).unwrap().is_empty());
    }

    #[test]
    fn a_foreign_or_damaged_side_file_is_refused_with_the_column_named() {
        let findings = vec![QualityFinding {
            date: d("2024-12-24"),
            rule: SoftRule::StalePrice,
            detail: "x".into(),
        }];
        let good = encode_quality_findings(&findings, ParquetCompression::Snappy).unwrap();
        // A findings file read as actions misses its columns.
        let err = decode_corporate_actions(&good).unwrap_err();
        assert!(err.to_string().contains("kind"), "{err}");
        // Truncated bytes are refused, not a panic.
        assert!(decode_quality_findings(&good[..good.len() / 2]).is_err());
        // An unknown rule code is refused naming it.
        let mut frame =
            df!("date" => [1i32], "rule" => ["no_such_rule"], "detail" => ["x"]).unwrap();
        frame
            .apply("date", |c| c.cast(&DataType::Date).unwrap())
            .unwrap();
        let bytes = write_frame(
            &mut frame,
            &arrow_schema(FINDING_COLUMNS),
            ParquetCompression::None,
        )
        .unwrap();
        let err = decode_quality_findings(&bytes).unwrap_err();
        assert!(err.to_string().contains("no_such_rule"), "{err}");
    }
}
