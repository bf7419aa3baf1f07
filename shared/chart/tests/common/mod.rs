//! Helpers shared by the limits tests (limits_response.rs and
//! limits_budget.rs): the chart fixture, the client settings they start
//! from and short constructors.

use std::time::Duration;

use chrono::NaiveDate;
use mdp_chart::ChartClientSettings;
use mdp_core::Ticker;

pub const MSFT: &str = "msft_1d_range_2021-02-01_2022-01-28_dividends.json";

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/yahoo/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn ticker(s: &str) -> Ticker {
    Ticker::parse(s).unwrap()
}

pub fn settings(base_url: String) -> ChartClientSettings {
    ChartClientSettings {
        timeout: Duration::from_secs(10),
        max_retries: 3,
        retry_delay: Duration::from_millis(10),
        ..ChartClientSettings::new(base_url)
    }
}
