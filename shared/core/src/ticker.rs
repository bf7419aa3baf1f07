//! Ticker symbols (DESIGN.md section 8).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest symbol accepted; Yahoo symbols such as `EURUSD=X` or `^GSPC` are far shorter.
pub const MAX_TICKER_LEN: usize = 12;

/// A normalised ticker: upper-case, 1–12 characters of `A–Z 0–9 . - ^ =`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Ticker(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid ticker {input:?}: a ticker is 1-12 characters of A-Z, 0-9 and . - ^ =, \
     at least one of them a letter or digit"
)]
pub struct TickerError {
    pub input: String,
}

impl Ticker {
    /// Trims and upper-cases `input`, then checks the character rule.
    pub fn parse(input: &str) -> Result<Ticker, TickerError> {
        let normalised = input.trim().to_ascii_uppercase();
        let valid_len = (1..=MAX_TICKER_LEN).contains(&normalised.len());
        let valid_chars = normalised
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b".-^=".contains(&b));
        // `.`, `..` or `^=` alone would be a path segment or no symbol at all.
        let has_alphanumeric = normalised.bytes().any(|b| b.is_ascii_alphanumeric());
        if valid_len && valid_chars && has_alphanumeric {
            Ok(Ticker(normalised))
        } else {
            Err(TickerError {
                input: input.to_string(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Hive partition value: every character outside `A-Z a-z 0-9 . _ -`
    /// percent-encoded (`^GSPC` → `%5EGSPC`), as pyarrow, polars and Athena decode it.
    pub fn partition_value(&self) -> String {
        crate::encoding::percent_encode(&self.0, b"._-")
    }
}

impl fmt::Display for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Ticker {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ticker::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Normalises a requested list: valid tickers de-duplicated in first-seen
/// order, and one error per rejected entry (the others still run).
pub fn normalise_tickers<S: AsRef<str>>(inputs: &[S]) -> (Vec<Ticker>, Vec<TickerError>) {
    let mut tickers: Vec<Ticker> = Vec::with_capacity(inputs.len());
    let mut errors = Vec::new();
    for input in inputs {
        match Ticker::parse(input.as_ref()) {
            Ok(t) if !tickers.contains(&t) => tickers.push(t),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    (tickers, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_yahoo_symbol_shapes_and_normalises() {
        for (input, expected) in [
            ("aapl", "AAPL"),
            (" brk-b ", "BRK-B"),
            ("^gspc", "^GSPC"),
            ("eurusd=x", "EURUSD=X"),
            ("ES=F", "ES=F"),
            ("WSU.DE", "WSU.DE"),
            ("ABCDEFGHIJKL", "ABCDEFGHIJKL"),
        ] {
            assert_eq!(Ticker::parse(input).unwrap().as_str(), expected, "{input}");
        }
    }

    #[test]
    fn rejects_bad_symbols_naming_them() {
        for input in [
            "",
            "   ",
            "ABCDEFGHIJKLM",
            "AA PL",
            "AAPL;DROP",
            "MSFT/..",
            "ÄPFEL",
            "a_b",
            // No letter or digit: `.` and `..` would change the request path.
            ".",
            "..",
            "^=",
            "-.-",
        ] {
            let err = Ticker::parse(input).unwrap_err();
            assert_eq!(err.input, input);
            assert!(err.to_string().contains("1-12 characters"), "{err}");
        }
    }

    #[test]
    fn normalise_dedupes_keeps_order_and_reports_bad_ones() {
        let (ok, bad) =
            normalise_tickers(&["msft", "AAPL", " MSFT", "bad ticker", "^GSPC", "aapl"]);
        let names: Vec<&str> = ok.iter().map(Ticker::as_str).collect();
        assert_eq!(names, ["MSFT", "AAPL", "^GSPC"]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].input, "bad ticker");
    }

    #[test]
    fn partition_value_percent_encodes_outside_safe_set() {
        let enc = |s: &str| Ticker::parse(s).unwrap().partition_value();
        assert_eq!(enc("^GSPC"), "%5EGSPC");
        assert_eq!(enc("EURUSD=X"), "EURUSD%3DX");
        assert_eq!(enc("BRK-B"), "BRK-B");
        assert_eq!(enc("WSU.DE"), "WSU.DE");
    }

    #[test]
    fn deserialize_validates() {
        let t: Ticker = serde_json::from_str("\" msft\"").unwrap();
        assert_eq!(t.as_str(), "MSFT");
        assert!(serde_json::from_str::<Ticker>("\"no way\"").is_err());
    }
}
