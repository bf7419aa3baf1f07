//! Test and development machinery, never linked by a Lambda function (a test
//! in `tests/lambda_dependencies.rs` checks it): the local chart server that
//! replays recorded Yahoo responses ([`ChartReplayServer`]), synthetic daily
//! bars for benchmarks and long backfills ([`synthetic_bars`],
//! [`synthetic_daily_chart`]), and a local S3/SQS/Secrets Manager
//! ([`MotoServer`]).
//!
//! It depends on mdp-core only, so mdp-chart and mdp-aws can use it in their
//! tests without a dependency cycle. The `mdp` command links it for `mdp demo`,
//! `mdp serve-charts` and `mdp bench`.

pub mod moto;
pub mod replay;

pub use moto::MotoServer;
pub use replay::{
    ChartReplayServer, ReceivedRequest, Reply, synthetic_bars, synthetic_daily_chart,
};

/// The machine's 1-minute load average (`/proc/loadavg`): how much other
/// work competed for the cores while a benchmark or load test ran, which
/// their reports record next to their figures.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
