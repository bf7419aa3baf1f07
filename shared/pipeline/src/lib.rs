//! The pipeline in one process: validate → fetch → transform → load with the
//! same stage code the Lambda functions run, plus the `mdp` command's demo
//! and benchmark.

pub mod bench;
pub mod demo;
pub mod load_bench;
pub mod runner;

pub use runner::{Pipeline, RunSummary, TickerOutcome, TickerSummary};
