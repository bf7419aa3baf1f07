//! What `mdp bench` measured: absolute figures (times, memory) and the
//! machine-independent ratios derived from them, printed as a table and
//! written as JSON (`--json`). `infra/bench/check_bench.py` compares the
//! ratios of a run with the committed baseline; absolute figures are only
//! reported.

use serde_json::{Value, json};

/// The unit of a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Milliseconds,
    Megabytes,
    /// A dimensionless ratio (`×`).
    Times,
}

impl Unit {
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Milliseconds => "ms",
            Unit::Megabytes => "MB",
            Unit::Times => "x",
        }
    }

    /// The factor to a common unit of the same dimension (seconds for
    /// times), so a ratio of a time in ms to one in s comes out right.
    fn scale(self) -> f64 {
        match self {
            Unit::Milliseconds => 0.001,
            Unit::Seconds | Unit::Megabytes | Unit::Times => 1.0,
        }
    }

    fn is_time(self) -> bool {
        matches!(self, Unit::Seconds | Unit::Milliseconds)
    }
}

/// A target from the goal table (lower is better for every figure).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    AtMost(f64),
    Below(f64),
}

impl Goal {
    pub fn met(self, value: f64) -> bool {
        match self {
            Goal::AtMost(limit) => value <= limit,
            Goal::Below(limit) => value < limit,
        }
    }

    fn to_json(self) -> Value {
        match self {
            Goal::AtMost(limit) => json!({"op": "<=", "value": limit}),
            Goal::Below(limit) => json!({"op": "<", "value": limit}),
        }
    }

    fn text(self, unit: Unit) -> String {
        let (op, limit) = match self {
            Goal::AtMost(limit) => ("≤", limit),
            Goal::Below(limit) => ("<", limit),
        };
        match unit {
            Unit::Times => format!("{op} {limit}×"),
            _ => format!("{op} {limit} {}", unit.symbol()),
        }
    }
}

/// One measured value.
#[derive(Clone, Debug)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: Unit,
    pub goal: Option<Goal>,
    /// What was measured, in words (sizes included).
    pub about: String,
}

/// A ratio of two figures: the same work on the same machine, so it holds
/// across machines where absolute times do not.
#[derive(Clone, Debug)]
pub struct Ratio {
    pub name: String,
    pub value: f64,
    pub numerator: String,
    pub denominator: String,
    pub goal: Option<Goal>,
    pub about: String,
}

/// Everything one `mdp bench` measured.
#[derive(Default)]
pub struct Figures {
    figures: Vec<Figure>,
    ratios: Vec<Ratio>,
}

impl Figures {
    pub fn add(&mut self, name: &str, value: f64, unit: Unit, about: impl Into<String>) {
        self.add_with_goal(name, value, unit, None, about);
    }

    pub fn add_with_goal(
        &mut self,
        name: &str,
        value: f64,
        unit: Unit,
        goal: Option<Goal>,
        about: impl Into<String>,
    ) {
        self.figures.push(Figure {
            name: name.to_string(),
            value,
            unit,
            goal,
            about: about.into(),
        });
    }

    pub fn get(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// Adds `numerator / denominator` when both were measured (a part of
    /// the bench that was skipped gives no ratio).
    pub fn add_ratio(
        &mut self,
        name: &str,
        numerator: &str,
        denominator: &str,
        goal: Option<Goal>,
        about: impl Into<String>,
    ) {
        let (Some(n), Some(d)) = (self.get(numerator), self.get(denominator)) else {
            return;
        };
        assert!(
            n.unit == d.unit || (n.unit.is_time() && d.unit.is_time()),
            "ratio {name} of {:?} to {:?}",
            n.unit,
            d.unit
        );
        let value = (n.value * n.unit.scale()) / (d.value * d.unit.scale());
        self.ratios.push(Ratio {
            name: name.to_string(),
            value,
            numerator: numerator.to_string(),
            denominator: denominator.to_string(),
            goal,
            about: about.into(),
        });
    }

    /// The JSON document `--json` writes: `figures` (absolute, reported
    /// only) and `ratios` (what the regression check compares), each with
    /// name, value, unit and the goal where the issue gives one.
    pub fn to_json(&self, mode: &str, sizes: Value) -> Value {
        let goal_json = |goal: Option<Goal>, value: f64| match goal {
            Some(g) => (g.to_json(), json!(g.met(value))),
            None => (Value::Null, Value::Null),
        };
        let figures: Vec<Value> = self
            .figures
            .iter()
            .map(|f| {
                let (goal, met) = goal_json(f.goal, f.value);
                json!({
                    "name": f.name,
                    "value": round(f.value),
                    "unit": f.unit.symbol(),
                    "goal": goal,
                    "goal_met": met,
                    "about": f.about,
                })
            })
            .collect();
        let ratios: Vec<Value> = self
            .ratios
            .iter()
            .map(|r| {
                let (goal, met) = goal_json(r.goal, r.value);
                json!({
                    "name": r.name,
                    "value": round(r.value),
                    "unit": Unit::Times.symbol(),
                    "numerator": r.numerator,
                    "denominator": r.denominator,
                    "better": "lower",
                    "goal": goal,
                    "goal_met": met,
                    "about": r.about,
                })
            })
            .collect();
        json!({
            "format": 1,
            "mode": mode,
            "optimized": !cfg!(debug_assertions),
            "cpus": std::thread::available_parallelism().map_or(0, usize::from),
            "recorded_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "sizes": sizes,
            "figures": figures,
            "ratios": ratios,
        })
    }

    /// The closing table: every figure with a goal, then every ratio.
    pub fn render_summary(&self) -> String {
        let verdict = |goal: Option<Goal>, value: f64| match goal {
            Some(g) if g.met(value) => "met",
            Some(_) => "MISSED",
            None => "",
        };
        let mut out = String::from("goals (issue 11):\n");
        for f in self.figures.iter().filter(|f| f.goal.is_some()) {
            out.push_str(&format!(
                "  {:<40} {:>10} {:<4} goal {:<10} {}\n",
                f.name,
                format!("{:.2}", f.value),
                f.unit.symbol(),
                f.goal.map(|g| g.text(f.unit)).unwrap_or_default(),
                verdict(f.goal, f.value),
            ));
        }
        out.push_str(
            "machine-independent ratios (make bench-check fails on one over 2× its baseline):\n",
        );
        for r in &self.ratios {
            out.push_str(&format!(
                "  {:<40} {:>10} {:<4} goal {:<10} {}\n",
                r.name,
                format!("{:.3}", r.value),
                "×",
                r.goal.map(|g| g.text(Unit::Times)).unwrap_or_default(),
                verdict(r.goal, r.value),
            ));
        }
        out
    }
}

/// Four significant decimals are more than a benchmark resolves.
fn round(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_of_a_time_in_ms_to_one_in_s_is_unitless() {
        let mut figures = Figures::default();
        figures.add("fast", 250.0, Unit::Milliseconds, "");
        figures.add("slow", 2.0, Unit::Seconds, "");
        figures.add_ratio("fast_vs_slow", "fast", "slow", Some(Goal::AtMost(0.2)), "");
        let r = &figures.ratios[0];
        assert!((r.value - 0.125).abs() < 1e-12);
        assert!(r.goal.unwrap().met(r.value));
    }

    #[test]
    fn a_ratio_of_a_figure_not_measured_is_left_out() {
        let mut figures = Figures::default();
        figures.add("fast", 250.0, Unit::Milliseconds, "");
        figures.add_ratio("fast_vs_skipped", "fast", "skipped", None, "");
        assert!(figures.ratios.is_empty());
    }

    #[test]
    fn the_json_names_value_unit_and_goal_of_each_figure_and_ratio() {
        let mut figures = Figures::default();
        figures.add_with_goal(
            "q",
            6.0,
            Unit::Milliseconds,
            Some(Goal::Below(5.0)),
            "query",
        );
        figures.add("copy", 3.0, Unit::Milliseconds, "copy");
        figures.add_ratio("q_vs_copy", "q", "copy", None, "q / copy");
        let doc = figures.to_json("quick", json!({"tickers": 100}));
        assert_eq!(doc["mode"], "quick");
        assert_eq!(doc["figures"][0]["name"], "q");
        assert_eq!(doc["figures"][0]["unit"], "ms");
        assert_eq!(doc["figures"][0]["goal"], json!({"op": "<", "value": 5.0}));
        assert_eq!(doc["figures"][0]["goal_met"], false);
        assert_eq!(doc["figures"][1]["goal"], Value::Null);
        assert_eq!(doc["ratios"][0]["value"], 2.0);
        assert_eq!(doc["ratios"][0]["numerator"], "q");
        assert_eq!(doc["ratios"][0]["better"], "lower");
    }
}
