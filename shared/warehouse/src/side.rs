//! The tables beside the fact table (issue 12): `fact_corporate_actions`,
//! `quality_quarantine` and `quality_findings`, in the warehouse schema, and
//! what one load of a ticker's side data does to them ([`plan`]).
//!
//! A [`SideBatch`] holds the ticker's complete current set of each kind (the
//! lake keeps one file per ticker per kind). Every backend reads the
//! ticker's stored rows under its lock, hands them with the batch to
//! [`plan`], and applies the plan's deletes and inserts (a rewritten row is
//! deleted and inserted again, with the timestamps the plan gives it) in the
//! same transaction. So the semantics are the same everywhere and live here:
//!
//! - corporate actions, by (date, kind): `upsert` inserts new keys and
//!   rewrites those whose values changed (`created_at` kept, `updated_at` =
//!   the batch's `now`); `append` inserts new keys only; `truncate_insert`
//!   makes the ticker's actions exactly the batch (keys not in it deleted,
//!   new ones inserted, changed ones rewritten; an unchanged row is left as
//!   it is, timestamps included, so a reload does not make every dividend
//!   look new);
//! - findings, by (date, rule): exactly the batch, whatever the strategy
//!   (they are derived data); a rewritten finding gets `recorded_at` = now;
//! - quarantine, by (date, raw_key): upserted, never deleted.
//!
//! Unchanged rows are never written, so the same batch applied twice leaves
//! the tables exactly as applied once, timestamps included. Timestamps are
//! kept to the microsecond, as the tables store them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use mdp_core::Ticker;
use mdp_core::config::LoadStrategy;
use mdp_core::quality::{
    ActionKind, CorporateAction, HardRule, QualityFinding, QuarantinedBar, SoftRule,
};

use crate::port::LoadReport;

/// `fact_corporate_actions`: dividends and splits.
pub const CORPORATE_ACTIONS_TABLE: &str = "fact_corporate_actions";
/// `quality_quarantine`: bars kept out of the curated zone.
pub const QUARANTINE_TABLE: &str = "quality_quarantine";
/// `quality_findings`: the soft rules' findings.
pub const FINDINGS_TABLE: &str = "quality_findings";

/// One side table as the migrations create it: the columns in order, those
/// that are NOT NULL, and the unique key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SideTable {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    /// Checked against the DDL of every dialect by a test.
    #[cfg_attr(not(test), allow(dead_code))]
    pub not_null: &'static [&'static str],
    pub key: &'static [&'static str],
}

pub(crate) const ACTIONS: SideTable = SideTable {
    name: CORPORATE_ACTIONS_TABLE,
    columns: &[
        "ticker",
        "date",
        "kind",
        "amount",
        "ratio",
        "numerator",
        "denominator",
        "created_at",
        "updated_at",
    ],
    not_null: &["ticker", "date", "kind", "created_at", "updated_at"],
    key: &["ticker", "date", "kind"],
};

pub(crate) const QUARANTINE: SideTable = SideTable {
    name: QUARANTINE_TABLE,
    columns: &[
        "ticker",
        "date",
        "raw_key",
        "rules",
        "detail",
        "open",
        "high",
        "low",
        "close",
        "adj_close",
        "volume",
        "quarantined_at",
    ],
    not_null: &[
        "ticker",
        "date",
        "raw_key",
        "rules",
        "detail",
        "close",
        "quarantined_at",
    ],
    key: &["ticker", "date", "raw_key"],
};

pub(crate) const FINDINGS: SideTable = SideTable {
    name: FINDINGS_TABLE,
    columns: &["ticker", "date", "rule", "detail", "recorded_at"],
    not_null: &["ticker", "date", "rule", "detail", "recorded_at"],
    key: &["ticker", "date", "rule"],
};

/// The side tables, in the order a load writes them.
pub(crate) const SIDE_TABLES: [SideTable; 3] = [ACTIONS, FINDINGS, QUARANTINE];

/// One ticker's side data, as one load takes it: the complete current set
/// of each kind.
#[derive(Debug, Clone, Copy)]
pub struct SideBatch<'a> {
    pub ticker: &'a Ticker,
    pub actions: &'a [CorporateAction],
    pub findings: &'a [QualityFinding],
    pub quarantine: &'a [QuarantinedBar],
    /// The load's time: `created_at`/`updated_at` of written actions,
    /// `recorded_at` of written findings (kept to the microsecond).
    pub now: DateTime<Utc>,
}

/// What one side load did, per table (`rows_in`: the batch's rows of that
/// kind; `updated`: rows rewritten because a value changed; `deleted`: rows
/// removed because the batch no longer holds them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideReport {
    pub actions: LoadReport,
    pub findings: LoadReport,
    pub quarantine: LoadReport,
}

/// A corporate action as stored, with its timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAction {
    pub action: CorporateAction,
    /// The `ratio` column: [`CorporateAction::ratio`] when it was written.
    pub ratio: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A finding as stored, with when it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFinding {
    pub finding: QualityFinding,
    pub recorded_at: DateTime<Utc>,
}

/// One ticker's rows of the three side tables: actions by (date, kind),
/// findings by (date, rule), quarantined bars by (date, raw_key), each in
/// that order (kinds and rules by code).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideRows {
    pub actions: Vec<StoredAction>,
    pub findings: Vec<StoredFinding>,
    pub quarantine: Vec<QuarantinedBar>,
}

impl SideRows {
    /// Puts the rows in the documented order.
    pub(crate) fn sorted(mut self) -> SideRows {
        self.actions.sort_by_key(|a| action_key(&a.action));
        self.findings.sort_by_key(|f| finding_key(&f.finding));
        self.quarantine.sort_by_key(quarantine_key);
        self
    }
}

/// Keys, ordered as the rows are read back.
pub(crate) type ActionKey = (NaiveDate, &'static str);
pub(crate) type FindingKey = (NaiveDate, &'static str);
pub(crate) type QuarantineKey = (NaiveDate, String);

pub(crate) fn action_key(a: &CorporateAction) -> ActionKey {
    (a.date, a.kind.code())
}

pub(crate) fn finding_key(f: &QualityFinding) -> FindingKey {
    (f.date, f.rule.code())
}

pub(crate) fn quarantine_key(q: &QuarantinedBar) -> QuarantineKey {
    (q.bar.date, q.raw_key.clone())
}

/// What a load writes to one table: keys to delete (gone, or rewritten),
/// then rows to insert (new, or rewritten).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Changes<K, R> {
    pub delete: Vec<K>,
    pub insert: Vec<R>,
}

impl<K, R> Default for Changes<K, R> {
    fn default() -> Self {
        Changes {
            delete: Vec::new(),
            insert: Vec::new(),
        }
    }
}

#[cfg(test)]
impl<K, R> Changes<K, R> {
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.insert.is_empty()
    }
}

/// Everything one side load writes, and its report.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SidePlan {
    pub actions: Changes<ActionKey, StoredAction>,
    pub findings: Changes<FindingKey, StoredFinding>,
    pub quarantine: Changes<QuarantineKey, QuarantinedBar>,
    pub report: SideReport,
}

/// A timestamp as the tables keep it: whole microseconds.
pub(crate) fn to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    ts.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(ts)
}

fn same_float(a: Option<f64>, b: Option<f64>) -> bool {
    a.map(f64::to_bits) == b.map(f64::to_bits)
}

fn same_action(stored: &StoredAction, new: &CorporateAction) -> bool {
    same_float(stored.action.amount, new.amount)
        && same_float(stored.action.numerator, new.numerator)
        && same_float(stored.action.denominator, new.denominator)
        && same_float(stored.ratio, new.ratio())
}

fn same_quarantine(stored: &QuarantinedBar, new: &QuarantinedBar) -> bool {
    let (a, b) = (&stored.bar, &new.bar);
    same_float(a.open, b.open)
        && same_float(a.high, b.high)
        && same_float(a.low, b.low)
        && a.close.to_bits() == b.close.to_bits()
        && same_float(a.adj_close, b.adj_close)
        && a.volume == b.volume
        && rules_text(&stored.rules) == rules_text(&new.rules)
        && stored.detail == new.detail
        && stored.quarantined_at == to_micros(new.quarantined_at)
}

/// The `rules` column: hard-rule codes, comma-separated.
pub(crate) fn rules_text(rules: &[HardRule]) -> String {
    rules.iter().map(|r| r.code()).collect::<Vec<_>>().join(",")
}

/// The rules of a `rules` column (empty text: none).
pub(crate) fn parse_rules(text: &str) -> Result<Vec<HardRule>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|code| {
            HardRule::from_code(code).ok_or_else(|| format!("unknown hard rule code {code:?}"))
        })
        .collect()
}

pub(crate) fn parse_kind(code: &str) -> Result<ActionKind, String> {
    ActionKind::from_code(code).ok_or_else(|| format!("unknown corporate action kind {code:?}"))
}

pub(crate) fn parse_rule(code: &str) -> Result<SoftRule, String> {
    SoftRule::from_code(code).ok_or_else(|| format!("unknown quality rule code {code:?}"))
}

/// A batch the tables cannot take faithfully, refused the same way on every
/// backend before anything is written: two rows of one key (each table is
/// unique on it), NaN or infinite numbers (missing is NULL, never NaN), and
/// texts with NUL characters (Postgres text cannot hold them).
pub fn check_side(batch: &SideBatch<'_>) -> Result<(), String> {
    let ticker = batch.ticker;
    let finite = |what: &str, date: NaiveDate, column: &str, v: Option<f64>| match v {
        Some(f) if !f.is_finite() => Err(format!(
            "{ticker} {date} {what}: {column} is {f}; missing values must be null"
        )),
        _ => Ok(()),
    };
    let text = |what: &str, date: NaiveDate, column: &str, s: &str| {
        if s.contains('\0') {
            Err(format!(
                "{ticker} {date} {what}: {column} contains a NUL character, which Postgres text cannot hold"
            ))
        } else {
            Ok(())
        }
    };
    let mut keys = BTreeSet::new();
    for a in batch.actions {
        if !keys.insert(action_key(a)) {
            return Err(format!(
                "{ticker} has two {} actions on {}: one per ticker, date and kind",
                a.kind, a.date
            ));
        }
        let what = a.kind.code();
        finite(what, a.date, "amount", a.amount)?;
        finite(what, a.date, "numerator", a.numerator)?;
        finite(what, a.date, "denominator", a.denominator)?;
    }
    let mut keys = BTreeSet::new();
    for f in batch.findings {
        if !keys.insert(finding_key(f)) {
            return Err(format!(
                "{ticker} has two {} findings on {}: one per ticker, date and rule",
                f.rule, f.date
            ));
        }
        text(f.rule.code(), f.date, "detail", &f.detail)?;
    }
    let mut keys = BTreeSet::new();
    for q in batch.quarantine {
        let date = q.bar.date;
        if !keys.insert(quarantine_key(q)) {
            return Err(format!(
                "{ticker} has two quarantined bars of {date} from {}: one per ticker, date and raw key",
                q.raw_key
            ));
        }
        let what = "quarantined bar";
        for (column, v) in [
            ("open", q.bar.open),
            ("high", q.bar.high),
            ("low", q.bar.low),
            ("close", Some(q.bar.close)),
            ("adj_close", q.bar.adj_close),
        ] {
            finite(what, date, column, v)?;
        }
        text(what, date, "raw_key", &q.raw_key)?;
        text(what, date, "detail", &q.detail)?;
    }
    Ok(())
}

/// What loading `batch` with `strategy` onto the ticker's `stored` rows
/// writes (see the module documentation). The batch is checked by
/// [`check_side`].
pub(crate) fn plan(batch: &SideBatch<'_>, stored: &SideRows, strategy: LoadStrategy) -> SidePlan {
    let now = to_micros(batch.now);
    let mut out = SidePlan::default();

    // Corporate actions.
    let report = &mut out.report.actions;
    report.rows_in = batch.actions.len();
    let current: BTreeMap<ActionKey, &StoredAction> = stored
        .actions
        .iter()
        .map(|s| (action_key(&s.action), s))
        .collect();
    let incoming: BTreeSet<ActionKey> = batch.actions.iter().map(action_key).collect();
    if strategy == LoadStrategy::TruncateInsert {
        for key in current.keys().filter(|k| !incoming.contains(*k)) {
            out.actions.delete.push(*key);
            report.deleted += 1;
        }
    }
    for action in batch.actions {
        let key = action_key(action);
        let row = |created_at| StoredAction {
            action: action.clone(),
            ratio: action.ratio(),
            created_at,
            updated_at: now,
        };
        match current.get(&key) {
            None => {
                out.actions.insert.push(row(now));
                report.inserted += 1;
            }
            Some(s) if strategy != LoadStrategy::Append && !same_action(s, action) => {
                out.actions.delete.push(key);
                out.actions.insert.push(row(s.created_at));
                report.updated += 1;
            }
            Some(_) => {}
        }
    }

    // Findings: exactly the batch.
    let report = &mut out.report.findings;
    report.rows_in = batch.findings.len();
    let current: BTreeMap<FindingKey, &StoredFinding> = stored
        .findings
        .iter()
        .map(|s| (finding_key(&s.finding), s))
        .collect();
    let incoming: BTreeSet<FindingKey> = batch.findings.iter().map(finding_key).collect();
    for key in current.keys().filter(|k| !incoming.contains(*k)) {
        out.findings.delete.push(*key);
        report.deleted += 1;
    }
    for finding in batch.findings {
        let key = finding_key(finding);
        let row = StoredFinding {
            finding: finding.clone(),
            recorded_at: now,
        };
        match current.get(&key) {
            None => {
                out.findings.insert.push(row);
                report.inserted += 1;
            }
            Some(s) if s.finding.detail != finding.detail => {
                out.findings.delete.push(key);
                out.findings.insert.push(row);
                report.updated += 1;
            }
            Some(_) => {}
        }
    }

    // Quarantine: upserted, never deleted.
    let report = &mut out.report.quarantine;
    report.rows_in = batch.quarantine.len();
    let current: BTreeMap<QuarantineKey, &QuarantinedBar> = stored
        .quarantine
        .iter()
        .map(|s| (quarantine_key(s), s))
        .collect();
    for bar in batch.quarantine {
        let key = quarantine_key(bar);
        let row = QuarantinedBar {
            quarantined_at: to_micros(bar.quarantined_at),
            ..bar.clone()
        };
        match current.get(&key) {
            None => {
                out.quarantine.insert.push(row);
                report.inserted += 1;
            }
            Some(s) if !same_quarantine(s, bar) => {
                out.quarantine.delete.push(key);
                out.quarantine.insert.push(row);
                report.updated += 1;
            }
            Some(_) => {}
        }
    }
    out
}

impl SidePlan {
    /// The ticker's rows once the plan is applied to `stored` (the
    /// in-memory warehouse's load).
    pub(crate) fn apply_to(&self, stored: &SideRows) -> SideRows {
        let mut next = stored.clone();
        next.actions
            .retain(|s| !self.actions.delete.contains(&action_key(&s.action)));
        next.actions.extend(self.actions.insert.iter().cloned());
        next.findings
            .retain(|s| !self.findings.delete.contains(&finding_key(&s.finding)));
        next.findings.extend(self.findings.insert.iter().cloned());
        next.quarantine
            .retain(|s| !self.quarantine.delete.contains(&quarantine_key(s)));
        next.quarantine
            .extend(self.quarantine.insert.iter().cloned());
        next.sorted()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use mdp_core::row::DailyBar;

    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
    }

    fn dividend(d: u32, amount: f64) -> CorporateAction {
        CorporateAction {
            date: day(d),
            kind: ActionKind::Dividend,
            amount: Some(amount),
            numerator: None,
            denominator: None,
        }
    }

    fn finding(d: u32, rule: SoftRule, detail: &str) -> QualityFinding {
        QualityFinding {
            date: day(d),
            rule,
            detail: detail.into(),
        }
    }

    fn quarantined(d: u32, close: f64) -> QuarantinedBar {
        QuarantinedBar {
            bar: DailyBar {
                date: day(d),
                open: None,
                high: Some(1.0),
                low: None,
                close,
                adj_close: None,
                volume: Some(-5),
            },
            rules: vec![HardRule::PriceNotPositive, HardRule::NegativeVolume],
            detail: "bad".into(),
            raw_key: "raw/k.json".into(),
            quarantined_at: Utc.with_ymd_and_hms(2024, 3, 9, 1, 2, 3).unwrap()
                + TimeDelta::nanoseconds(1_234_567),
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap() + TimeDelta::nanoseconds(7_654_321)
    }

    #[test]
    fn plans_each_table_by_its_own_rule() {
        let ticker = Ticker::parse("MSFT").unwrap();
        let actions = [dividend(1, 0.205), dividend(2, 1.0 / 3.0)];
        let findings = [finding(1, SoftRule::StalePrice, "same")];
        let quarantine = [quarantined(3, -1.0)];
        let batch = SideBatch {
            ticker: &ticker,
            actions: &actions,
            findings: &findings,
            quarantine: &quarantine,
            now: t0(),
        };
        check_side(&batch).unwrap();
        let first = plan(&batch, &SideRows::default(), LoadStrategy::Upsert);
        assert_eq!(first.report.actions.inserted, 2);
        assert_eq!(first.report.findings.inserted, 1);
        assert_eq!(first.report.quarantine.inserted, 1);
        // Microseconds, as stored.
        assert_eq!(first.actions.insert[0].created_at, to_micros(t0()));
        assert_eq!(
            first.actions.insert[0].created_at.timestamp_subsec_nanos() % 1000,
            0
        );
        let stored = first.apply_to(&SideRows::default());

        // The same batch again, for every strategy and a later time: nothing.
        for strategy in [
            LoadStrategy::Upsert,
            LoadStrategy::Append,
            LoadStrategy::TruncateInsert,
        ] {
            let later = SideBatch {
                now: t0() + TimeDelta::days(1),
                ..batch
            };
            let again = plan(&later, &stored, strategy);
            assert!(again.actions.is_empty(), "{strategy}");
            assert!(again.findings.is_empty() && again.quarantine.is_empty());
        }

        // A changed amount: rewritten by upsert and truncate_insert (created_at
        // kept), left by append; a gone action deleted by truncate_insert only.
        let changed = [dividend(1, 0.21)];
        let later = SideBatch {
            actions: &changed,
            findings: &[],
            quarantine: &[],
            now: t0() + TimeDelta::days(1),
            ..batch
        };
        let up = plan(&later, &stored, LoadStrategy::Upsert);
        assert_eq!(up.actions.delete, vec![(day(1), "dividend")]);
        assert_eq!(up.actions.insert[0].created_at, to_micros(t0()));
        assert_eq!(
            up.actions.insert[0].updated_at,
            to_micros(t0() + TimeDelta::days(1))
        );
        assert_eq!(
            (up.report.actions.updated, up.report.actions.deleted),
            (1, 0)
        );
        // The finding disappeared: deleted whatever the strategy; quarantine stays.
        assert_eq!(up.report.findings.deleted, 1);
        assert!(up.quarantine.is_empty());
        let append = plan(&later, &stored, LoadStrategy::Append);
        assert!(append.actions.is_empty());
        assert_eq!(append.report.findings.deleted, 1);
        let replace = plan(&later, &stored, LoadStrategy::TruncateInsert);
        assert_eq!(
            replace.actions.delete,
            vec![(day(2), "dividend"), (day(1), "dividend")]
        );
        assert_eq!(
            (
                replace.report.actions.updated,
                replace.report.actions.deleted
            ),
            (1, 1)
        );
        let after = replace.apply_to(&stored);
        assert_eq!(after.actions.len(), 1);
        assert_eq!(after.quarantine, stored.quarantine);
    }

    #[test]
    fn bad_batches_are_refused() {
        let ticker = Ticker::parse("MSFT").unwrap();
        let base = SideBatch {
            ticker: &ticker,
            actions: &[],
            findings: &[],
            quarantine: &[],
            now: t0(),
        };
        let twice = [dividend(1, 1.0), dividend(1, 2.0)];
        let why = check_side(&SideBatch {
            actions: &twice,
            ..base
        })
        .unwrap_err();
        assert!(why.contains("two dividend actions on 2024-03-01"), "{why}");
        let nan = [dividend(1, f64::NAN)];
        let why = check_side(&SideBatch {
            actions: &nan,
            ..base
        })
        .unwrap_err();
        assert!(why.contains("amount is NaN"), "{why}");
        let nul = [finding(1, SoftRule::LargeMove, "a\0b")];
        let why = check_side(&SideBatch {
            findings: &nul,
            ..base
        })
        .unwrap_err();
        assert!(why.contains("NUL"), "{why}");
        let inf = [quarantined(2, f64::INFINITY)];
        let why = check_side(&SideBatch {
            quarantine: &inf,
            ..base
        })
        .unwrap_err();
        assert!(why.contains("close is inf"), "{why}");
    }

    #[test]
    fn rules_round_trip_as_codes() {
        let rules = vec![HardRule::PriceNotPositive, HardRule::DuplicateDate];
        let text = rules_text(&rules);
        assert_eq!(text, "price_not_positive,duplicate_date");
        assert_eq!(parse_rules(&text).unwrap(), rules);
        assert_eq!(parse_rules("").unwrap(), vec![]);
        assert!(parse_rules("price_not_positive,nope").is_err());
    }
}
