//! A transform's work on the files beside the curated partitions: the
//! ticker's corporate actions, quality findings and quarantined bars
//! (`mdp_lake::side`). Each file holds the ticker's complete set and is
//! rewritten only when the set changed.

use chrono::NaiveDate;
use mdp_core::config::ParquetCompression;
use mdp_core::quality::{CorporateAction, QualityFinding, QuarantinedBar};
use mdp_core::{CuratedRow, Lake, Ticker};
use mdp_lake::{
    ParquetError, encode_corporate_actions, encode_quality_findings, encode_quarantine,
    read_corporate_actions, read_quality_findings, read_quarantine,
};

use crate::quality::{SessionBar, soft_findings};
use crate::stage::TransformError;

/// What a transform brings to the side files.
pub(crate) struct SideUpdate<'a> {
    /// The request's range: the response speaks for every action in it.
    pub range: (NaiveDate, NaiveDate),
    /// The dividends and splits the response reports in the range.
    pub reported_actions: Vec<CorporateAction>,
    /// Bars of the range the gate kept out.
    pub quarantined: &'a [QuarantinedBar],
    /// The curated rows in hand, sorted by date: the whole history, or a
    /// resumed transform's span.
    pub rows: &'a [CuratedRow],
    /// The first row whose findings are computed (against the row before
    /// it); the stored findings up to the date of the row before it stay.
    pub findings_from: usize,
    /// The quarantined bars the watermark counted so far.
    pub quarantined_before: u64,
}

/// The side files' totals after the update.
pub(crate) struct SideOutcome {
    pub quarantined_total: u64,
    pub findings_total: u64,
    /// Findings about the rows this transform looked at.
    pub findings_recorded: usize,
}

async fn put(
    lake: &Lake,
    key: String,
    encoded: Result<Vec<u8>, ParquetError>,
) -> Result<(), TransformError> {
    let bytes = encoded.map_err(|source| TransformError::Encode {
        key: key.clone(),
        source,
    })?;
    lake.store()
        .put(&key, bytes)
        .await
        .map_err(|source| TransformError::Write { key, source })
}

pub(crate) async fn update_side_files(
    lake: &Lake,
    ticker: &Ticker,
    update: SideUpdate<'_>,
    compression: ParquetCompression,
) -> Result<SideOutcome, TransformError> {
    let (start, end) = update.range;
    let (stored_actions, stored_findings) = futures::future::try_join(
        read_corporate_actions(lake, ticker),
        read_quality_findings(lake, ticker),
    )
    .await?;

    let mut actions: Vec<CorporateAction> = stored_actions
        .iter()
        .filter(|a| a.date < start || a.date > end)
        .cloned()
        .chain(update.reported_actions)
        .collect();
    actions.sort_by_key(|a| (a.date, a.kind));
    if actions != stored_actions {
        put(
            lake,
            Lake::corporate_actions_key(ticker),
            encode_corporate_actions(&actions, compression),
        )
        .await?;
    }

    let rows = update.rows;
    let from = update.findings_from.min(rows.len());
    let bars: Vec<SessionBar<'_>> = rows
        .iter()
        .map(|row| SessionBar {
            bar: &row.bar,
            exchange: row.meta.exchange.as_deref(),
        })
        .collect();
    let recomputed = soft_findings(&bars, from, &actions);
    let findings_recorded = recomputed.len();
    // Findings a row makes are dated after the row before it (a missing
    // session) or on the row itself: those up to `rows[from - 1]` stay.
    let kept_until = from.checked_sub(1).map(|i| rows[i].date());
    let mut findings: Vec<QualityFinding> = stored_findings
        .iter()
        .filter(|f| kept_until.is_some_and(|until| f.date <= until))
        .cloned()
        .chain(recomputed)
        .collect();
    findings.sort_by_key(|f| (f.date, f.rule));
    if findings != stored_findings {
        put(
            lake,
            Lake::quality_findings_key(ticker),
            encode_quality_findings(&findings, compression),
        )
        .await?;
    }

    let mut quarantined_total = update.quarantined_before;
    if !update.quarantined.is_empty() {
        let stored = read_quarantine(lake, ticker).await?;
        let mut merged = stored.clone();
        for bar in update.quarantined {
            match merged
                .iter_mut()
                .find(|q| q.bar.date == bar.bar.date && q.raw_key == bar.raw_key)
            {
                // The same bar of the same response again (a redelivery):
                // it keeps the time it was first quarantined.
                Some(q) if same_record(q, bar) => {}
                Some(q) => *q = bar.clone(),
                None => merged.push(bar.clone()),
            }
        }
        merged.sort_by(|a, b| (a.bar.date, &a.raw_key).cmp(&(b.bar.date, &b.raw_key)));
        if !same_records(&merged, &stored) {
            put(
                lake,
                Lake::quarantine_key(ticker),
                encode_quarantine(&merged, compression),
            )
            .await?;
        }
        quarantined_total = merged.len() as u64;
    }
    Ok(SideOutcome {
        quarantined_total,
        findings_total: findings.len() as u64,
        findings_recorded,
    })
}

/// The same quarantined bar, floats bit for bit (a NaN price is one), the
/// time it was quarantined aside.
fn same_record(a: &QuarantinedBar, b: &QuarantinedBar) -> bool {
    a.bar.same_values(&b.bar)
        && a.rules == b.rules
        && a.detail == b.detail
        && a.raw_key == b.raw_key
}

fn same_records(a: &[QuarantinedBar], b: &[QuarantinedBar]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| same_record(x, y) && x.quarantined_at == y.quarantined_at)
}
