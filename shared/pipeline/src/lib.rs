//! The pipeline in one process: validate → fetch → transform → load with the
//! same stage code the Lambda functions run. The `mdp` command (shared/cli)
//! drives it.

pub mod runner;
pub mod status;
pub mod summary;

pub use runner::Pipeline;
pub use summary::{RunSummary, TickerOutcome, TickerSummary};
