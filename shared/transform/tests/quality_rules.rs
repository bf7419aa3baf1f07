//! Each data-quality rule on crafted series: what it catches, what it must
//! not catch (holidays, early closes, split days, other calendars).

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::quality::{ActionKind, CorporateAction, HardRule, SoftRule};
use mdp_core::row::DailyBar;
use mdp_transform::quality::{SessionBar, gate, hard_rule_breaches, soft_findings};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn bar(date: &str, open: f64, high: f64, low: f64, close: f64, volume: i64) -> DailyBar {
    DailyBar {
        date: d(date),
        open: Some(open),
        high: Some(high),
        low: Some(low),
        close,
        adj_close: Some(close),
        volume: Some(volume),
    }
}

/// A plain bar: open = close, high/low 1% around it.
fn plain(date: &str, close: f64) -> DailyBar {
    bar(date, close, close * 1.01, close * 0.99, close, 1_000)
}

fn rules_of(b: &DailyBar) -> Vec<HardRule> {
    hard_rule_breaches(b).map(|(r, _)| r).unwrap_or_default()
}

#[test]
fn each_hard_rule() {
    assert_eq!(rules_of(&plain("2024-01-02", 10.0)), vec![]);
    // A close of -1, a zero open.
    let (rules, detail) = hard_rule_breaches(&bar("2024-01-02", 0.0, 2.0, 0.5, -1.0, 5)).unwrap();
    assert_eq!(rules, vec![HardRule::PriceNotPositive]);
    assert!(
        detail.contains("open 0 is not > 0") && detail.contains("close -1 is not > 0"),
        "{detail}"
    );
    // high below the close; high below the open.
    assert_eq!(
        rules_of(&bar("2024-01-02", 10.0, 10.5, 9.0, 11.0, 5)),
        vec![HardRule::HighBelowOpenOrClose]
    );
    assert_eq!(
        rules_of(&bar("2024-01-02", 12.0, 11.5, 9.0, 11.0, 5)),
        vec![HardRule::HighBelowOpenOrClose]
    );
    // low above the open; high < low breaks both.
    assert_eq!(
        rules_of(&bar("2024-01-02", 9.0, 12.0, 9.5, 11.0, 5)),
        vec![HardRule::LowAboveOpenOrClose]
    );
    assert_eq!(
        rules_of(&bar("2024-01-02", 10.0, 9.0, 11.0, 10.0, 5)),
        vec![
            HardRule::HighBelowOpenOrClose,
            HardRule::LowAboveOpenOrClose
        ]
    );
    assert_eq!(
        rules_of(&bar("2024-01-02", 10.0, 11.0, 9.0, 10.0, -1)),
        vec![HardRule::NegativeVolume]
    );
    // Equal bounds are fine (a flat session); missing open/high/low/volume are not breaches.
    assert_eq!(
        rules_of(&bar("2024-01-02", 10.0, 10.0, 10.0, 10.0, 0)),
        vec![]
    );
    let sparse = DailyBar {
        open: None,
        high: None,
        low: Some(9.0),
        volume: None,
        adj_close: None,
        ..plain("2024-01-02", 10.0)
    };
    assert_eq!(rules_of(&sparse), vec![]);
    let sparse_bad = DailyBar {
        open: None,
        high: Some(9.5),
        ..sparse
    };
    assert_eq!(rules_of(&sparse_bad), vec![HardRule::HighBelowOpenOrClose]);
    // A non-finite price (not from JSON, but from a crafted file) is no price.
    let nan = DailyBar {
        adj_close: Some(f64::NAN),
        ..plain("2024-01-02", 10.0)
    };
    assert_eq!(rules_of(&nan), vec![HardRule::PriceNotPositive]);
}

#[test]
fn the_gate_keeps_good_bars_and_quarantines_the_rest_with_their_reasons() {
    let now: DateTime<Utc> = "2024-01-05T22:00:00Z".parse().unwrap();
    let bars = vec![
        plain("2024-01-02", 10.0),
        bar("2024-01-03", 10.0, 11.0, 9.0, -1.0, 5),
        plain("2024-01-04", 10.5),
    ];
    let superseded = vec![plain("2024-01-04", 99.0)];
    let (clean, quarantined) = gate(bars, superseded, "raw/x.json", now);
    assert_eq!(
        clean.iter().map(|b| b.date).collect::<Vec<_>>(),
        vec![d("2024-01-02"), d("2024-01-04")]
    );
    assert_eq!(quarantined.len(), 2);
    assert_eq!(quarantined[0].bar.date, d("2024-01-03"));
    assert_eq!(quarantined[0].rules, vec![HardRule::PriceNotPositive]);
    assert_eq!(quarantined[1].rules, vec![HardRule::DuplicateDate]);
    assert!(
        quarantined[1].detail.contains("close 10.5 kept"),
        "{}",
        quarantined[1].detail
    );
    assert!(
        quarantined
            .iter()
            .all(|q| q.raw_key == "raw/x.json" && q.quarantined_at == now)
    );

    // A replaced bar whose date has no kept bar is settled, never dropped.
    let (clean, quarantined) = gate(
        vec![plain("2024-01-02", 10.0)],
        vec![
            plain("2024-01-01", 9.0),
            bar("2024-01-03", 10.0, 11.0, 9.0, -1.0, 5),
        ],
        "raw/x.json",
        now,
    );
    assert_eq!(
        clean.iter().map(|b| b.date).collect::<Vec<_>>(),
        vec![d("2024-01-01"), d("2024-01-02")]
    );
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].bar.date, d("2024-01-03"));
}

#[test]
fn of_several_bars_of_one_date_the_last_good_one_is_kept_and_the_rest_is_one_record() {
    let now: DateTime<Utc> = "2024-01-05T22:00:00Z".parse().unwrap();
    // The response's last bar of 01-03 is bad, an earlier one good: the good one is curated.
    let last_bad = bar("2024-01-03", 10.0, 11.0, 9.0, -1.0, 5);
    let (clean, quarantined) = gate(
        vec![last_bad.clone()],
        vec![plain("2024-01-03", 10.2)],
        "raw/x.json",
        now,
    );
    assert_eq!(clean, vec![plain("2024-01-03", 10.2)]);
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].bar, last_bad);
    assert_eq!(
        quarantined[0].rules,
        vec![HardRule::PriceNotPositive, HardRule::DuplicateDate]
    );
    // Three bars of one date, none good: nothing curated, one record naming all three.
    let (clean, quarantined) = gate(
        vec![bar("2024-01-03", 10.0, 11.0, 9.0, -2.0, 5)],
        vec![
            bar("2024-01-03", 10.0, 9.0, 9.5, 10.0, 5),
            bar("2024-01-03", 10.0, 11.0, 9.0, 10.0, -7),
        ],
        "raw/x.json",
        now,
    );
    assert!(clean.is_empty());
    assert_eq!(quarantined.len(), 1, "one record per date and response");
    assert_eq!(
        quarantined[0].rules,
        vec![
            HardRule::PriceNotPositive,
            HardRule::HighBelowOpenOrClose,
            HardRule::NegativeVolume,
            HardRule::DuplicateDate
        ]
    );
    assert_eq!(
        quarantined[0].bar.high,
        Some(9.0),
        "the first bar that broke a rule"
    );
    let detail = &quarantined[0].detail;
    assert!(
        detail.contains("volume -7")
            && detail.contains("close -2")
            && detail.contains("no bar of 2024-01-03 passed"),
        "{detail}"
    );
}

fn series<'a>(bars: &'a [DailyBar], exchange: &'a str) -> Vec<SessionBar<'a>> {
    bars.iter()
        .map(|bar| SessionBar {
            bar,
            exchange: Some(exchange),
        })
        .collect()
}

fn found(
    bars: &[DailyBar],
    exchange: &str,
    actions: &[CorporateAction],
) -> Vec<(NaiveDate, SoftRule)> {
    soft_findings(&series(bars, exchange), 0, actions)
        .into_iter()
        .map(|f| (f.date, f.rule))
        .collect()
}

#[test]
fn missing_sessions_follow_the_exchange_calendar_holidays_and_early_closes() {
    // 2024-12-23 (Mon), 12-24 is an early-close session, 12-25 a holiday, 12-26, 12-27.
    let bars = [
        plain("2024-12-23", 10.0),
        plain("2024-12-26", 10.1),
        plain("2024-12-27", 10.2),
    ];
    let findings = soft_findings(&series(&bars, "NMS"), 0, &[]);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        (findings[0].date, findings[0].rule),
        (d("2024-12-24"), SoftRule::MissingSession)
    );
    assert!(
        findings[0].detail.contains("early-close"),
        "{}",
        findings[0].detail
    );
    // Over New Year and a weekend, MLK day and Good Friday: nothing missing.
    let bars = [
        plain("2024-12-31", 10.0),
        plain("2025-01-02", 10.05),
        plain("2025-01-17", 10.1),
        plain("2025-01-21", 10.2),
        plain("2025-04-17", 10.3),
        plain("2025-04-21", 10.4),
    ];
    let findings = found(&bars, "NYQ", &[]);
    // Between 01-02 and 01-17 and between 01-21 and 04-17 sessions are missing
    // (9 and 60 of them): each gap is one finding dated its first session.
    assert_eq!(
        findings,
        vec![
            (d("2025-01-03"), SoftRule::MissingSession),
            (d("2025-01-22"), SoftRule::MissingSession)
        ]
    );
    // The day of mourning for President Carter (2025-01-09) is not a session.
    let bars = [plain("2025-01-08", 10.0), plain("2025-01-10", 10.0 * 1.01)];
    assert_eq!(found(&bars, "NMS", &[]), vec![]);
    // A gap of exactly two sessions lists both.
    let bars = [plain("2025-03-03", 10.0), plain("2025-03-06", 10.0 * 1.01)];
    assert_eq!(
        found(&bars, "NMS", &[]),
        vec![
            (d("2025-03-04"), SoftRule::MissingSession),
            (d("2025-03-05"), SoftRule::MissingSession)
        ]
    );
}

#[test]
fn a_bar_on_a_closed_day_and_other_calendars() {
    // Independence Day 2024 (Thursday) and a Saturday.
    let bars = [
        plain("2024-07-03", 10.0),
        plain("2024-07-04", 10.1),
        plain("2024-07-05", 10.2),
        plain("2024-07-06", 10.3),
    ];
    assert_eq!(
        found(&bars, "NMS", &[]),
        vec![
            (d("2024-07-04"), SoftRule::BarOnClosedDay),
            (d("2024-07-06"), SoftRule::BarOnClosedDay)
        ]
    );
    // Crypto trades every day and Frankfurt keeps its own holidays: no calendar findings.
    assert_eq!(found(&bars, "CCC", &[]), vec![]);
    let gap = [plain("2024-12-20", 10.0), plain("2024-12-30", 10.0 * 1.02)];
    assert_eq!(found(&gap, "GER", &[]), vec![]);
    assert_eq!(found(&gap, "NMS", &[]).len(), 4);
}

#[test]
fn stale_prices_large_moves_and_unit_jumps() {
    let bars = [
        plain("2025-03-03", 10.0),
        plain("2025-03-04", 10.0),                       // identical: stale
        bar("2025-03-05", 10.0, 10.5, 9.5, 10.0, 1_000), // same close, other high: not stale
        plain("2025-03-06", 13.0),                       // +30%: large move
        plain("2025-03-07", 10.0),                       // -23%: inside ±25%
        plain("2025-03-10", 1000.0),                     // ×100: unit jump
        plain("2025-03-11", 10.2),                       // ÷98: unit jump back
        plain("2025-03-12", 12.5),                       // +22.5%: inside
    ];
    assert_eq!(
        found(&bars, "NMS", &[]),
        vec![
            (d("2025-03-04"), SoftRule::StalePrice),
            (d("2025-03-06"), SoftRule::LargeMove),
            (d("2025-03-10"), SoftRule::UnitJump),
            (d("2025-03-11"), SoftRule::UnitJump),
        ]
    );
}

fn split(date: &str, numerator: f64, denominator: f64) -> CorporateAction {
    CorporateAction {
        date: d(date),
        kind: ActionKind::Split,
        amount: None,
        numerator: Some(numerator),
        denominator: Some(denominator),
    }
}

#[test]
fn a_jump_on_a_split_date_that_the_split_explains() {
    // AAPL's 4-for-1 split: 2020-08-28 closed at 499.23 (pre-split), 2020-08-31 at 129.04.
    let bars = [plain("2020-08-28", 499.23), plain("2020-08-31", 129.04)];
    let findings = soft_findings(&series(&bars, "NMS"), 0, &[split("2020-08-31", 4.0, 1.0)]);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].rule, SoftRule::SplitJump);
    assert!(
        findings[0].detail.contains("4-for-1"),
        "{}",
        findings[0].detail
    );
    // Without the split it is a large move; a split another day explains nothing.
    assert_eq!(
        found(&bars, "NMS", &[]),
        vec![(d("2020-08-31"), SoftRule::LargeMove)]
    );
    assert_eq!(
        found(&bars, "NMS", &[split("2020-08-28", 4.0, 1.0)]),
        vec![(d("2020-08-31"), SoftRule::LargeMove)]
    );
    // A split whose ratio does not fit the jump (2-for-1 against ÷3.87) explains nothing.
    assert_eq!(
        found(&bars, "NMS", &[split("2020-08-31", 2.0, 1.0)]),
        vec![(d("2020-08-31"), SoftRule::LargeMove)]
    );
    // Data Yahoo already split-adjusted: no jump, no finding, split or not.
    let adjusted = [plain("2020-08-28", 124.81), plain("2020-08-31", 129.04)];
    assert_eq!(
        found(&adjusted, "NMS", &[split("2020-08-31", 4.0, 1.0)]),
        vec![]
    );
    // A reverse split (1-for-10) multiplies the price by 10.
    let reverse = [plain("2023-05-01", 0.5), plain("2023-05-02", 5.1)];
    assert_eq!(
        found(&reverse, "NMS", &[split("2023-05-02", 1.0, 10.0)]),
        vec![(d("2023-05-02"), SoftRule::SplitJump)]
    );
}

#[test]
fn findings_start_where_asked_and_use_the_bar_before() {
    let bars = [
        plain("2025-03-03", 10.0),
        plain("2025-03-04", 10.0),
        plain("2025-03-07", 20.0),
    ];
    let all = soft_findings(&series(&bars, "NMS"), 0, &[]);
    let from_2 = soft_findings(&series(&bars, "NMS"), 2, &[]);
    // From the third bar: the two missing sessions before it and its move, not the stale second bar.
    assert_eq!(
        from_2.iter().map(|f| (f.date, f.rule)).collect::<Vec<_>>(),
        vec![
            (d("2025-03-05"), SoftRule::MissingSession),
            (d("2025-03-06"), SoftRule::MissingSession),
            (d("2025-03-07"), SoftRule::LargeMove)
        ]
    );
    assert_eq!(all.len(), from_2.len() + 1);
}
