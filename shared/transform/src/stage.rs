//! The transform stage: raw response → bars of the range → merged history →
//! indicators → curated Parquet partitions and the watermark.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use futures::StreamExt;
use mdp_core::chart::{ChartParseError, parse_chart};
use mdp_core::config::ParquetCompression;
use mdp_core::messages::{LoadRequest, MESSAGE_VERSION, TransformRequest};
use mdp_core::{CuratedRow, ErrorClass, Lake, StageError, StoreError, Watermark};

use mdp_core::lake::IndicatorTail;
use mdp_core::row::DailyBar;
use mdp_lake::{CuratedError, ParquetError, encode_parquet, read_partitions};

use crate::history::{Resume, merge_span};
use crate::quality;
use crate::side::{SideUpdate, update_side_files};

/// Partition writes of one transform in flight at once.
const PARTITION_WRITES_IN_FLIGHT: usize = 8;

/// Why a transform message could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("raw_key {raw_key:?} is not in the raw zone of {ticker} ({expected_prefix})")]
    RawKeyElsewhere {
        raw_key: String,
        ticker: String,
        expected_prefix: String,
    },
    #[error("raw response {key} does not exist")]
    RawMissing { key: String },
    #[error("reading raw response {key}")]
    RawRead {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("raw response {key}")]
    RawUnparseable {
        key: String,
        #[source]
        source: ChartParseError,
    },
    #[error("reading the stored history")]
    History(#[from] CuratedError),
    #[error("encoding {key}")]
    Encode {
        key: String,
        #[source]
        source: ParquetError,
    },
    #[error("writing {key}")]
    Write {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("reading or writing the watermark")]
    Watermark(#[source] StoreError),
    #[error("locking the ticker's history")]
    Lock(#[source] StoreError),
}

impl TransformError {
    /// Store failures keep their class; a bad message or a bad raw response
    /// stays bad.
    pub fn class(&self) -> ErrorClass {
        match self {
            TransformError::RawRead { source, .. } | TransformError::Write { source, .. } => {
                source.class()
            }
            TransformError::History(e) => e.class(),
            TransformError::Watermark(e) | TransformError::Lock(e) => e.class(),
            TransformError::RawKeyElsewhere { .. }
            | TransformError::RawMissing { .. }
            | TransformError::RawUnparseable { .. }
            | TransformError::Encode { .. } => ErrorClass::Permanent,
        }
    }
}

impl From<TransformError> for StageError {
    fn from(e: TransformError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

#[derive(Debug, Clone)]
pub struct TransformOutcome {
    /// Bars with a close dated inside the request's range that passed the
    /// data-quality gate.
    pub bars_in_range: usize,
    /// Bars of the range the gate quarantined.
    pub bars_quarantined: usize,
    /// Quality findings about the bars this transform (re)computed.
    pub findings_recorded: usize,
    /// Curated rows of the ticker after the merge.
    pub rows_total: u64,
    /// Rows in the partitions rewritten (unchanged partitions are not rewritten).
    pub rows_written: u64,
    /// Whether the whole history was read and its indicators recomputed
    /// (rather than resumed from the watermark's tail).
    pub full_recomputation: bool,
    pub partitions_written: Vec<String>,
    /// The load message; `None` when the range held no bars (passed or quarantined).
    pub next: Option<LoadRequest>,
}

pub async fn transform_stage(
    lake: &Lake,
    request: &TransformRequest,
    compression: ParquetCompression,
    now: DateTime<Utc>,
) -> Result<TransformOutcome, StageError> {
    let ticker = &request.ticker;
    let expected_prefix = format!("raw/yahoo/chart/ticker={}/", ticker.partition_value());
    if !request.raw_key.starts_with(&expected_prefix) {
        return Err(TransformError::RawKeyElsewhere {
            raw_key: request.raw_key.clone(),
            ticker: ticker.to_string(),
            expected_prefix,
        }
        .into());
    }
    let key = &request.raw_key;
    let raw = lake
        .store()
        .get(key)
        .await
        .map_err(|source| TransformError::RawRead {
            key: key.clone(),
            source,
        })?
        .ok_or_else(|| TransformError::RawMissing { key: key.clone() })?;
    let series = parse_chart(&raw).map_err(|source| TransformError::RawUnparseable {
        key: key.clone(),
        source,
    })?;
    // The data-quality gate: a bar that breaks a hard rule never reaches the
    // history or the indicators; it is kept aside with its reasons.
    let (incoming, quarantined) = quality::gate(
        series.bars_in_range(request.start, request.end),
        series.superseded_in_range(request.start, request.end),
        key,
        now,
    );
    let reported_actions = series.actions_in_range(request.start, request.end);

    // One transform of a ticker at a time (in this process, and across
    // processes sharing a local lake): the history read here is still the
    // history when the partitions and the watermark below are written.
    let _lock = lake
        .lock_ticker(ticker)
        .await
        .map_err(TransformError::Lock)?;
    let stored_mark = lake
        .read_watermark(ticker)
        .await
        .map_err(TransformError::Watermark)?;
    let listed = lake
        .curated_partitions(ticker)
        .await
        .map_err(|source| CuratedError::Store {
            key: Lake::curated_prefix(ticker),
            source,
        })
        .map_err(TransformError::History)?;
    let merge = |stored: &[CuratedRow], resume| {
        merge_span(
            ticker.as_str(),
            stored,
            &incoming,
            &series.meta,
            now,
            resume,
        )
    };
    // A daily run reads the partitions it may rewrite and resumes the
    // indicators from the watermark's tail; anything else (no tail, a
    // restatement older than the tail, a lake that does not match the
    // watermark) reads and recomputes the whole history.
    let mut incremental = None;
    // What a resumption that did not work out read already: the last
    // partitions of the listing, and their rows.
    let mut span_read: Option<(usize, Vec<CuratedRow>)> = None;
    if let Some(span_keys) = incremental_span(stored_mark.as_ref(), &listed, &incoming) {
        let span = read_partitions(lake, ticker, &span_keys)
            .await
            .map_err(TransformError::History)?;
        let mark = stored_mark.as_ref().expect("a span comes from a watermark");
        let tail = mark.indicator_tail.as_ref().expect("and from its tail");
        if span_matches_tail(&span, mark.last_date, tail)
            && let Some(merged) = merge(&span, Resume::FromTail(tail))
        {
            incremental = Some((span, merged, mark.rows));
        } else {
            span_read = Some((span_keys.len(), span));
        }
    }
    let full_recomputation = incremental.is_none();
    let (stored, merged, stored_rows) = match incremental {
        Some(found) => found,
        None => {
            let (span_len, span_rows) = span_read.unwrap_or_default();
            let keys: Vec<String> = listed[..listed.len() - span_len]
                .iter()
                .map(|(_, key)| key.clone())
                .collect();
            let mut stored = read_partitions(lake, ticker, &keys)
                .await
                .map_err(TransformError::History)?;
            stored.extend(span_rows);
            let merged = merge(&stored, Resume::FromFirstBar).expect("needs no stored state");
            let count = stored.len() as u64;
            (stored, merged, count)
        }
    };
    mdp_core::crash::point("transform.after_history_read");
    let rows = &merged.rows;
    let stored_by_year = group_by_year(&stored);
    let merged_by_year = group_by_year(rows);

    let touched_years: BTreeSet<i32> = incoming.iter().map(|b| b.date.year()).collect();
    let changed_years: Vec<i32> = merged_by_year
        .iter()
        .filter(|(year, year_rows)| {
            !stored_by_year.get(year).is_some_and(|old| {
                old.len() == year_rows.len()
                    && old
                        .iter()
                        .zip(year_rows.iter())
                        .all(|(a, b)| a.same_values(b) && a.updated_at == b.updated_at)
            })
        })
        .map(|(year, _)| *year)
        .collect();

    let (mut generation, mut partitions) = stored_mark
        .as_ref()
        .map(|m| (m.generation, m.partitions.clone()))
        .unwrap_or_default();
    let mut adopted = Vec::new();
    if full_recomputation {
        if let Some(mark) = &stored_mark
            && mark.indicator_tail.is_some()
            && !changed_years.is_empty()
        {
            // The partitions below may change years the tail does not cover;
            // were the process to stop between them, a tail that no longer
            // matches older years must not be resumed from.
            lake.write_watermark(
                ticker,
                &Watermark {
                    indicator_tail: None,
                    ..mark.clone()
                },
            )
            .await
            .map_err(TransformError::Watermark)?;
        }
        adopted = reconcile_partition_map(&mut partitions, &listed, generation);
    }

    let mut written = Vec::new();
    let mut rows_written = 0u64;
    let mut to_load: BTreeSet<i32> = touched_years.clone();
    to_load.extend(&adopted);
    let mut encoded = Vec::with_capacity(changed_years.len());
    for year in changed_years {
        let year_rows = &merged_by_year[&year];
        let key = Lake::curated_key(ticker, year);
        let bytes =
            encode_parquet(year_rows, compression).map_err(|source| TransformError::Encode {
                key: key.clone(),
                source,
            })?;
        encoded.push((year, key, bytes, year_rows.len() as u64));
    }
    // The partitions are written a few at a time: on a local lake their
    // fsyncs then share the file system's journal commits instead of
    // queueing one behind the other (a backfill writes a partition a year).
    // Each write is atomic and the watermark comes after all of them, so a
    // stop in between leaves what a sequential loop would.
    let puts = encoded
        .into_iter()
        .map(|(year, key, bytes, rows)| async move {
            lake.store()
                .put(&key, bytes)
                .await
                .map_err(|source| TransformError::Write {
                    key: key.clone(),
                    source,
                })?;
            mdp_core::crash::point("transform.after_partition");
            Ok::<_, TransformError>((year, key, rows))
        });
    let mut results: Vec<Result<(i32, String, u64), TransformError>> = futures::stream::iter(puts)
        .buffer_unordered(PARTITION_WRITES_IN_FLIGHT)
        .collect()
        .await;
    results.sort_by_key(|r| r.as_ref().map(|(year, _, _)| *year).ok());
    for result in results {
        let (year, key, rows) = result?;
        rows_written += rows;
        written.push((year, key));
        to_load.insert(year);
    }

    // Dividends and splits, quality findings and quarantined bars: each
    // recomputed from this response and the rows in hand, so a redelivery
    // repairs whatever a stop before the watermark left out.
    let side = update_side_files(
        lake,
        ticker,
        SideUpdate {
            range: (request.start, request.end),
            reported_actions,
            quarantined: &quarantined,
            rows,
            // A resumed transform holds the rows from its span's first on;
            // the findings of that first row (against the row before it)
            // are those already stored.
            findings_from: usize::from(!full_recomputation),
            quarantined_before: stored_mark.as_ref().map_or(0, |m| m.quarantined_bars),
        },
        compression,
    )
    .await?;

    let rows_total = stored_rows + merged.added;
    if let Some(last) = rows.last() {
        if !written.is_empty() || !adopted.is_empty() {
            generation += 1;
            for year in written.iter().map(|(year, _)| year).chain(&adopted) {
                partitions.insert(*year, generation);
            }
        }
        mdp_core::crash::point("transform.before_watermark");
        lake.write_watermark(
            ticker,
            &Watermark {
                last_date: last.date(),
                rows: rows_total,
                updated_at: now,
                generation,
                partitions,
                instrument_type: last.meta.instrument_type.clone(),
                indicator_tail: merged.tail.clone(),
                quarantined_bars: side.quarantined_total,
                quality_findings: side.findings_total,
            },
        )
        .await
        .map_err(TransformError::Watermark)?;
        mdp_core::crash::point("transform.after_watermark");
    }

    // Quarantined bars go to the warehouse too, even when no bar passed.
    let next = (!incoming.is_empty() || !quarantined.is_empty()).then(|| {
        let load_rows: Vec<&CuratedRow> = to_load
            .iter()
            .flat_map(|y| merged_by_year[y].iter().copied())
            .collect();
        LoadRequest {
            v: MESSAGE_VERSION,
            run_id: request.run_id.clone(),
            ticker: ticker.clone(),
            partition_keys: to_load
                .iter()
                .map(|y| Lake::curated_key(ticker, *y))
                .collect(),
            rows: load_rows.len() as u64,
            min_date: load_rows.first().map(|r| r.date()),
            max_date: load_rows.last().map(|r| r.date()),
        }
    });
    Ok(TransformOutcome {
        bars_in_range: incoming.len(),
        bars_quarantined: quarantined.len(),
        findings_recorded: side.findings_recorded,
        rows_total,
        full_recomputation,
        rows_written,
        partitions_written: written.into_iter().map(|(_, key)| key).collect(),
        next,
    })
}

fn group_by_year(rows: &[CuratedRow]) -> BTreeMap<i32, Vec<&CuratedRow>> {
    let mut by_year: BTreeMap<i32, Vec<&CuratedRow>> = BTreeMap::new();
    for row in rows {
        by_year.entry(row.date().year()).or_default().push(row);
    }
    by_year
}

/// The partitions a transform resuming from the watermark's tail reads:
/// every year from the tail's first bar on (the incoming bars are no older),
/// so the last partitions of the listing. `None` when it cannot resume: no
/// tail, incoming bars older than the tail, or a partition listing that
/// differs from the watermark's (a partition written by a transform that
/// stopped before its watermark).
fn incremental_span(
    mark: Option<&Watermark>,
    listed: &[(i32, String)],
    incoming: &[DailyBar],
) -> Option<Vec<String>> {
    let mark = mark?;
    let tail = mark.indicator_tail.as_ref()?;
    let first = tail.bars.first()?.date;
    if incoming.iter().any(|bar| bar.date < first) {
        return None;
    }
    let listed_years: BTreeSet<i32> = listed.iter().map(|(year, _)| *year).collect();
    if !listed_years.iter().eq(mark.partitions.keys()) {
        return None;
    }
    let span = listed
        .iter()
        .filter(|(year, _)| *year >= first.year())
        .map(|(_, key)| key.clone())
        .collect();
    Some(span)
}

/// Whether the stored rows from the tail's first date on are the tail's bars
/// (same dates, closes and averages) and end at the watermark's last date:
/// otherwise the lake changed after the watermark was written, and resuming
/// from the tail would not give the values of a full recomputation.
fn span_matches_tail(span: &[CuratedRow], last_date: NaiveDate, tail: &IndicatorTail) -> bool {
    let Some(first) = tail.bars.first() else {
        return false;
    };
    let from_tail: Vec<&CuratedRow> = span.iter().filter(|r| r.date() >= first.date).collect();
    let bits = |x: Option<f64>| x.map(f64::to_bits);
    let finite = |x: f64| x.is_finite().then_some(x);
    from_tail.len() == tail.bars.len()
        && span.iter().map(CuratedRow::date).max() == Some(last_date)
        && from_tail.iter().zip(&tail.bars).all(|(row, bar)| {
            row.date() == bar.date
                && row.bar.close.to_bits() == bar.close.to_bits()
                && bits(row.indicators.ema_12) == bits(finite(bar.ema_12))
                && bits(row.indicators.macd_signal) == bits(finite(bar.macd_signal))
        })
}

/// After a full read, the watermark's partition map names exactly the
/// partitions in the lake: a year that is gone leaves it; a year it did not
/// know (written by a transform that stopped before its watermark) is
/// returned, to be recorded as rewritten now, so the load catches it up.
/// Watermarks from before generations (generation 0) treat every partition
/// as loaded, as they always did.
fn reconcile_partition_map(
    partitions: &mut std::collections::BTreeMap<i32, u64>,
    listed: &[(i32, String)],
    generation: u64,
) -> Vec<i32> {
    let listed_years: BTreeSet<i32> = listed.iter().map(|(year, _)| *year).collect();
    partitions.retain(|year, _| listed_years.contains(year));
    let unknown: Vec<i32> = listed_years
        .into_iter()
        .filter(|year| !partitions.contains_key(year))
        .collect();
    if generation == 0 {
        partitions.extend(unknown.iter().map(|year| (*year, 0)));
        return Vec::new();
    }
    unknown
}
