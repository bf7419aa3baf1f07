//! `mdp demo`: the ordinary pipeline, offline. Recorded real chart responses
//! are served by a local HTTP server inside the process, so the real client,
//! lake and warehouse code all run; only the far end is local.

use mdp_core::messages::ScheduleEvent;
use mdp_core::{Config, StageError};
use mdp_devtools::ChartReplayServer;
use mdp_pipeline::{Pipeline, RunSummary};

/// Recorded responses bundled into the binary (see tests/fixtures/yahoo/SOURCES.md).
pub const DEMO_SERIES: [(&str, &[u8]); 4] = [
    (
        "MSFT",
        include_bytes!(
            "../../../tests/fixtures/yahoo/msft_1d_range_2021-02-01_2022-01-28_dividends.json"
        ),
    ),
    (
        "NVDA",
        include_bytes!(
            "../../../tests/fixtures/yahoo/nvda_1d_range_2021-02-01_2022-01-28_split.json"
        ),
    ),
    (
        "AAPL",
        include_bytes!(
            "../../../tests/fixtures/yahoo/aapl_1d_range_2020-08-31_2020-11-06_div_split.json"
        ),
    ),
    (
        "BTC-USD",
        include_bytes!("../../../tests/fixtures/yahoo/btc-usd_1d_range_2020_nulls.json"),
    ),
];

/// What `mdp serve-charts` serves besides [`DEMO_SERIES`]: the 2025 AAPL
/// recording (the sample events under `events/` ask for AAPL in 2025).
pub const SERVE_SERIES: [(&str, &[u8]); 4] = [
    ("MSFT", DEMO_SERIES[0].1),
    ("NVDA", DEMO_SERIES[1].1),
    (
        "AAPL",
        include_bytes!(
            "../../../tests/fixtures/yahoo/aapl_1d_range6mo_live_last_bar_dividends.json"
        ),
    ),
    ("BTC-USD", DEMO_SERIES[3].1),
];

/// The range the bundled recordings cover.
pub const DEMO_START: &str = "2020-01-01";
pub const DEMO_END: &str = "2022-01-31";

/// Starts the replay server, points the configuration at it, and runs the
/// four tickers over the recorded range. The lake and warehouse are the
/// configured ones (`./data` by default).
pub async fn run_demo(mut config: Config) -> Result<(RunSummary, Config), StageError> {
    let server = ChartReplayServer::start()
        .await
        .map_err(|e| StageError::permanent(format!("starting the local chart server: {e}")))?;
    for (symbol, body) in DEMO_SERIES {
        server
            .add_series(symbol, body)
            .map_err(|e| StageError::permanent(format!("bundled recording of {symbol}: {e}")))?;
    }
    config.api_base_url = server.base_url();
    let pipeline = Pipeline::from_config(config.clone()).await?;
    let event = ScheduleEvent {
        tickers: Some(DEMO_SERIES.iter().map(|(s, _)| s.to_string()).collect()),
        date: None,
        start: Some(DEMO_START.parse().expect("valid date")),
        end: Some(DEMO_END.parse().expect("valid date")),
    };
    let end = event.end.expect("set above");
    let summary = pipeline.run(&event, end).await?;
    pipeline.warehouse.close().await;
    Ok((summary, config))
}
