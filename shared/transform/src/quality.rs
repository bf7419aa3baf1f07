//! The data-quality gate (docs/quality.md). Hard rules decide whether a bar
//! from the chart API may enter the curated zone at all; soft rules look at a
//! bar next to the one before it (and the exchange's calendar, and the
//! ticker's splits) and record what looks wrong without dropping anything.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use mdp_core::calendar;
use mdp_core::quality::{
    ActionKind, CorporateAction, HardRule, QualityFinding, QuarantinedBar, SoftRule,
};
use mdp_core::row::DailyBar;

/// A close-to-close move beyond this fraction (up or down) is a finding.
pub const LARGE_MOVE: f64 = 0.25;

/// A close between 100 / `UNIT_JUMP_BAND` and 100 × `UNIT_JUMP_BAND` times
/// the previous one (or the inverse) looks like a unit mix-up (pence and
/// pounds, cents and dollars), not a market move.
pub const UNIT_JUMP_BAND: f64 = 1.5;

/// A gap of more sessions than this is one finding (dated its first missing
/// session) rather than one per session: a ticker halted for a year should
/// not bury the others.
pub const MISSING_SESSIONS_LISTED: usize = 5;

/// Exchanges (Yahoo's `exchangeName`) that trade on the NYSE/Nasdaq calendar
/// of `mdp_core::calendar`: Nasdaq (NMS, NGM, NCM, NAS, NIM for its indexes),
/// NYSE (NYQ, NYS), NYSE American (ASE), NYSE Arca (PCX), Cboe BZX (BTS), and
/// the S&P and Dow Jones indexes (SNP, DJI). Others (crypto, currencies,
/// futures, foreign exchanges) get no calendar rules.
pub const US_EXCHANGES: &[&str] = &[
    "NMS", "NGM", "NCM", "NAS", "NIM", "NYQ", "NYS", "ASE", "PCX", "BTS", "SNP", "DJI",
];

/// Whether bars of this exchange follow the NYSE/Nasdaq calendar.
pub fn on_us_calendar(exchange: Option<&str>) -> bool {
    exchange.is_some_and(|e| US_EXCHANGES.contains(&e))
}

/// The hard rules a bar breaks, in [`HardRule::ALL`] order, with what
/// exactly was wrong; `None` for a bar that may enter the curated zone.
pub fn hard_rule_breaches(bar: &DailyBar) -> Option<(Vec<HardRule>, String)> {
    let mut rules = Vec::new();
    let mut details = Vec::new();
    let prices = [
        ("open", bar.open),
        ("high", bar.high),
        ("low", bar.low),
        ("close", Some(bar.close)),
        ("adj_close", bar.adj_close),
    ];
    let bad: Vec<String> = prices
        .iter()
        .filter_map(|(name, v)| {
            v.filter(|p| !(p.is_finite() && *p > 0.0))
                .map(|p| (name, p))
        })
        .map(|(name, p)| format!("{name} {p} is not > 0"))
        .collect();
    if !bad.is_empty() {
        rules.push(HardRule::PriceNotPositive);
        details.extend(bad);
    }
    // The order rules compare prices that are there and valid; a missing
    // open is compared through the close alone.
    let valid = |p: Option<f64>| p.filter(|p| p.is_finite() && *p > 0.0);
    let close = valid(Some(bar.close));
    let body = [valid(bar.open), close];
    if let Some(high) = valid(bar.high)
        && let Some(top) = body.iter().flatten().copied().reduce(f64::max)
        && high < top
    {
        rules.push(HardRule::HighBelowOpenOrClose);
        details.push(format!("high {high} < {top}"));
    }
    if let Some(low) = valid(bar.low)
        && let Some(bottom) = body.iter().flatten().copied().reduce(f64::min)
        && low > bottom
    {
        rules.push(HardRule::LowAboveOpenOrClose);
        details.push(format!("low {low} > {bottom}"));
    }
    if let Some(volume) = bar.volume.filter(|v| *v < 0) {
        rules.push(HardRule::NegativeVolume);
        details.push(format!("volume {volume} is < 0"));
    }
    (!rules.is_empty()).then(|| (rules, details.join("; ")))
}

/// Splits the bars of a response into those that pass the hard rules and
/// the quarantined rest. `bars` hold one bar per date (the response's last
/// of that date); `superseded` the earlier bars of a date that differ from
/// it, in response order. Of the bars of one date the last that passes the
/// hard rules is kept; the others of that date make one quarantine record
/// (its key is the date and the raw response), holding the first bar that
/// broke a rule (else the last one replaced), every rule broken, and what
/// was wrong with each bar.
pub fn gate(
    bars: Vec<DailyBar>,
    superseded: Vec<DailyBar>,
    raw_key: &str,
    now: DateTime<Utc>,
) -> (Vec<DailyBar>, Vec<QuarantinedBar>) {
    // Replaced bars are rare: only their dates are grouped, the other bars
    // are checked as they come.
    let mut replaced: std::collections::BTreeMap<NaiveDate, Vec<DailyBar>> = Default::default();
    for bar in superseded {
        replaced.entry(bar.date).or_default().push(bar);
    }
    let mut out = Gated {
        clean: Vec::with_capacity(bars.len()),
        quarantined: Vec::new(),
        raw_key,
        now,
    };
    for bar in bars {
        match replaced.remove(&bar.date) {
            Some(mut earlier) => {
                earlier.push(bar);
                out.settle(earlier);
            }
            None if hard_rule_breaches(&bar).is_none() => out.clean.push(bar),
            None => out.settle(vec![bar]),
        }
    }
    // A replaced bar whose date has no kept bar (not from the parser, which
    // always keeps one) is still settled, never dropped.
    let leftovers = !replaced.is_empty();
    for (_, candidates) in replaced {
        out.settle(candidates);
    }
    if leftovers {
        out.clean.sort_by_key(|b| b.date);
        out.quarantined.sort_by_key(|q| q.bar.date);
    }
    (out.clean, out.quarantined)
}

/// The gate's results so far.
struct Gated<'a> {
    clean: Vec<DailyBar>,
    quarantined: Vec<QuarantinedBar>,
    raw_key: &'a str,
    now: DateTime<Utc>,
}

impl Gated<'_> {
    /// The bars of one date, in response order.
    fn settle(&mut self, candidates: Vec<DailyBar>) {
        let Some(date) = candidates.first().map(|b| b.date) else {
            return;
        };
        let verdicts: Vec<Option<(Vec<HardRule>, String)>> =
            candidates.iter().map(hard_rule_breaches).collect();
        let chosen = verdicts.iter().rposition(Option::is_none);
        let several = candidates.len() > 1;
        let others: Vec<usize> = (0..candidates.len())
            .filter(|i| Some(*i) != chosen)
            .collect();
        let Some(&last_other) = others.last() else {
            self.clean.extend(candidates);
            return;
        };
        let mut rules = Vec::new();
        let mut details = Vec::new();
        for &i in &others {
            if several {
                rules.push(HardRule::DuplicateDate);
            }
            let label = if several {
                format!("bar with close {}: ", candidates[i].close)
            } else {
                String::new()
            };
            match &verdicts[i] {
                Some((broken, why)) => {
                    rules.extend(broken);
                    details.push(format!("{label}{why}"));
                }
                None => details.push(format!(
                    "{label}another bar of {date} in the same response replaced it"
                )),
            }
        }
        match chosen {
            Some(c) if several => details.push(format!("close {} kept", candidates[c].close)),
            None if several => details.push(format!("no bar of {date} passed")),
            _ => {}
        }
        rules.sort();
        rules.dedup();
        // The record shows the first bar that broke a rule, else the last replaced.
        let shown = others
            .iter()
            .copied()
            .find(|i| verdicts[*i].is_some())
            .unwrap_or(last_other);
        if let Some(c) = chosen {
            self.clean.push(candidates[c].clone());
        }
        self.quarantined.push(QuarantinedBar {
            bar: candidates[shown].clone(),
            rules,
            detail: details.join("; "),
            raw_key: self.raw_key.to_string(),
            quarantined_at: self.now,
        });
    }
}

/// A bar as the soft rules see it: its values and its exchange.
#[derive(Debug, Clone, Copy)]
pub struct SessionBar<'a> {
    pub bar: &'a DailyBar,
    pub exchange: Option<&'a str>,
}

/// The soft-rule findings of `bars[from..]`, each bar against the one before
/// it (so `from` ≥ 1 unless the series starts at `bars[0]`). `bars` are one
/// ticker's, sorted by date, unique per date; `actions` are the ticker's
/// (only the splits count). Findings come sorted by date and rule.
pub fn soft_findings(
    bars: &[SessionBar<'_>],
    from: usize,
    actions: &[CorporateAction],
) -> Vec<QualityFinding> {
    let mut findings = Vec::new();
    for i in from..bars.len() {
        let SessionBar { bar, exchange } = bars[i];
        let us = on_us_calendar(exchange);
        if us && !calendar::is_session(bar.date) {
            findings.push(QualityFinding {
                date: bar.date,
                rule: SoftRule::BarOnClosedDay,
                detail: format!("a bar on {}, when the exchange was closed", bar.date),
            });
        }
        let Some(prev) = i.checked_sub(1).map(|p| bars[p].bar) else {
            continue;
        };
        if us {
            missing_sessions(prev.date, bar.date, &mut findings);
        }
        if same_prices(prev, bar) {
            findings.push(QualityFinding {
                date: bar.date,
                rule: SoftRule::StalePrice,
                detail: format!(
                    "open, high, low, close and volume repeat those of {} (close {})",
                    prev.date, bar.close
                ),
            });
        }
        if let Some(finding) = jump(prev, bar, actions) {
            findings.push(finding);
        }
    }
    findings.sort_by_key(|f| (f.date, f.rule));
    findings
}

fn same_prices(a: &DailyBar, b: &DailyBar) -> bool {
    let bits = |x: Option<f64>| x.map(f64::to_bits);
    bits(a.open) == bits(b.open)
        && bits(a.high) == bits(b.high)
        && bits(a.low) == bits(b.low)
        && a.close.to_bits() == b.close.to_bits()
        && a.volume == b.volume
}

/// Sessions of the calendar strictly between two bars' dates.
fn missing_sessions(prev: NaiveDate, next: NaiveDate, findings: &mut Vec<QualityFinding>) {
    let mut missing = Vec::new();
    let mut day = prev + Duration::days(1);
    while day < next {
        if calendar::is_session(day) {
            missing.push(day);
        }
        day += Duration::days(1);
    }
    let early = |d: NaiveDate| {
        if calendar::is_early_close(d) {
            " (an early-close session)"
        } else {
            ""
        }
    };
    if missing.len() <= MISSING_SESSIONS_LISTED {
        findings.extend(missing.into_iter().map(|d| QualityFinding {
            date: d,
            rule: SoftRule::MissingSession,
            detail: format!("no bar for the session of {d}{}", early(d)),
        }));
    } else if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
        findings.push(QualityFinding {
            date: *first,
            rule: SoftRule::MissingSession,
            detail: format!("no bars for {} sessions, {first} to {last}", missing.len()),
        });
    }
}

/// The finding a close-to-close jump makes, if any: explained by a split of
/// that date, a unit mix-up, or a large move.
fn jump(prev: &DailyBar, bar: &DailyBar, actions: &[CorporateAction]) -> Option<QualityFinding> {
    if !(prev.close.is_finite() && prev.close > 0.0 && bar.close.is_finite()) {
        return None;
    }
    let factor = bar.close / prev.close;
    if (factor - 1.0).abs() <= LARGE_MOVE {
        return None;
    }
    let finding = |rule, detail| {
        Some(QualityFinding {
            date: bar.date,
            rule,
            detail,
        })
    };
    let moved = format!("close {} after {}: ×{:.4}", bar.close, prev.close, factor);
    // A split of r new shares per old one divides the price by r: once the
    // split is taken out, what is left must be an ordinary move.
    let split = actions
        .iter()
        .filter(|a| a.kind == ActionKind::Split && a.date == bar.date)
        .find_map(CorporateAction::ratio);
    if let Some(ratio) = split
        && ((factor * ratio) - 1.0).abs() <= LARGE_MOVE
    {
        return finding(
            SoftRule::SplitJump,
            format!(
                "{moved}, explained by the {ratio}-for-1 split of that day (history before it is not split-adjusted)"
            ),
        );
    }
    let hundredfold = |f: f64| f > 100.0 / UNIT_JUMP_BAND && f < 100.0 * UNIT_JUMP_BAND;
    if hundredfold(factor) || hundredfold(1.0 / factor) {
        return finding(
            SoftRule::UnitJump,
            format!("{moved}: about 100×, a unit mix-up (pence/pounds, cents/dollars)?"),
        );
    }
    finding(
        SoftRule::LargeMove,
        format!("{moved}, beyond ±{:.0}%", LARGE_MOVE * 100.0),
    )
}
