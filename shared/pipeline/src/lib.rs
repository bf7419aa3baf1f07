//! The pipeline in one process: validate → fetch → transform → load with the
//! same stage code the Lambda functions run. The `mdp` command (shared/cli)
//! drives it.

pub mod runner;

pub use runner::{Pipeline, RunSummary, TickerOutcome, TickerSummary};
