//! Data quality (docs/quality.md): the rules a bar from the chart API is held
//! to, what a bar that breaks a hard rule becomes (a [`QuarantinedBar`], kept
//! out of the curated zone and the indicators), and what a soft rule records
//! (a [`QualityFinding`] per ticker and date, the bar itself is kept). Also
//! the corporate actions (dividends, splits) the responses report.
//!
//! Only the types and their stable codes live here; the rules themselves are
//! in `mdp_transform::quality`, the lake files in `mdp_lake::side`.

use chrono::{DateTime, NaiveDate, Utc};

use crate::row::DailyBar;

/// A rule whose breach keeps the bar out of the curated zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HardRule {
    /// A price (open, high, low, close, adj_close) that is not finite or not > 0.
    PriceNotPositive,
    /// `high < max(open, close)`.
    HighBelowOpenOrClose,
    /// `low > min(open, close)`.
    LowAboveOpenOrClose,
    /// `volume < 0`.
    NegativeVolume,
    /// Another bar of the same session date in the same response superseded it
    /// (the later one is kept: Yahoo's "current day" bar comes last).
    DuplicateDate,
}

/// A rule whose breach is recorded; the bar is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SoftRule {
    /// A session of the exchange's calendar with no bar between two bars.
    MissingSession,
    /// A bar dated on a day the exchange was closed.
    BarOnClosedDay,
    /// Open, high, low, close and volume identical to the previous bar's.
    StalePrice,
    /// A close-to-close move larger than the threshold (and no split explains it).
    LargeMove,
    /// A close about 100× (or 1/100×) the previous one: a pence/pound or
    /// cents/dollars mix-up, not a market move.
    UnitJump,
    /// A jump on a split date that the split ratio explains (informational:
    /// the history before it is not split-adjusted).
    SplitJump,
}

macro_rules! coded {
    ($ty:ident { $($variant:ident => $code:literal),+ $(,)? }) => {
        impl $ty {
            /// Every rule, in documentation order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stable code stored in the lake and the warehouse.
            pub fn code(self) -> &'static str {
                match self { $($ty::$variant => $code),+ }
            }

            pub fn from_code(code: &str) -> Option<$ty> {
                match code { $($code => Some($ty::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

coded!(HardRule {
    PriceNotPositive => "price_not_positive",
    HighBelowOpenOrClose => "high_below_open_or_close",
    LowAboveOpenOrClose => "low_above_open_or_close",
    NegativeVolume => "negative_volume",
    DuplicateDate => "duplicate_date",
});

coded!(SoftRule {
    MissingSession => "missing_session",
    BarOnClosedDay => "bar_on_closed_day",
    StalePrice => "stale_price",
    LargeMove => "large_move",
    UnitJump => "unit_jump",
    SplitJump => "split_jump",
});

/// A bar kept out of the curated zone, with why and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantinedBar {
    pub bar: DailyBar,
    /// Every hard rule it breaks (at least one), in [`HardRule::ALL`] order.
    pub rules: Vec<HardRule>,
    /// What exactly was wrong, for a person ("close -1 is not > 0").
    pub detail: String,
    /// The raw response it came in (relative to the lake root).
    pub raw_key: String,
    pub quarantined_at: DateTime<Utc>,
}

/// A soft rule's finding about one ticker-date.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityFinding {
    pub date: NaiveDate,
    pub rule: SoftRule,
    /// What was seen ("close 250.0 after 2.5: ×100.0").
    pub detail: String,
}

/// What kind of corporate action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionKind {
    Dividend,
    Split,
}

coded!(ActionKind {
    Dividend => "dividend",
    Split => "split",
});

/// A dividend or split as the chart response's `events` report it, dated in
/// the exchange's time zone like the bars.
#[derive(Debug, Clone, PartialEq)]
pub struct CorporateAction {
    pub date: NaiveDate,
    pub kind: ActionKind,
    /// Cash per share of a dividend; `None` for a split.
    pub amount: Option<f64>,
    /// Shares after / before of a split (4 and 1 for "4:1"); `None` for a dividend.
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
}

impl CorporateAction {
    /// Shares after per share before (4.0 for a 4:1 split, 0.1 for 1:10);
    /// `None` for a dividend or a split without a usable ratio.
    pub fn ratio(&self) -> Option<f64> {
        match (self.numerator, self.denominator) {
            (Some(n), Some(d)) if n.is_finite() && d.is_finite() && n > 0.0 && d > 0.0 => {
                Some(n / d)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for rule in HardRule::ALL {
            assert_eq!(HardRule::from_code(rule.code()), Some(*rule));
            assert!(seen.insert(rule.code()));
        }
        for rule in SoftRule::ALL {
            assert_eq!(SoftRule::from_code(rule.code()), Some(*rule));
            assert!(seen.insert(rule.code()));
        }
        assert_eq!(HardRule::from_code("split_jump"), None);
    }

    #[test]
    fn split_ratio() {
        let split = |n, d| CorporateAction {
            date: NaiveDate::from_ymd_opt(2020, 8, 31).unwrap(),
            kind: ActionKind::Split,
            amount: None,
            numerator: Some(n),
            denominator: Some(d),
        };
        assert_eq!(split(4.0, 1.0).ratio(), Some(4.0));
        assert_eq!(split(1.0, 10.0).ratio(), Some(0.1));
        assert_eq!(split(0.0, 1.0).ratio(), None);
        assert_eq!(split(1.0, 0.0).ratio(), None);
    }
}
