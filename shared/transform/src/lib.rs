//! The transform stage: section 5 indicators, merging fetched bars into the
//! stored history, and writing the curated partitions (through `mdp-lake`)
//! and the watermark.

pub mod history;
pub mod indicators;
pub mod quality;
pub mod repair;
mod side;
pub mod stage;

pub use history::{lake_now, merge_history};
pub use indicators::{EmaState, IndicatorState, compute_indicators, resume_indicators};
pub use repair::{RebuildReport, rebuild_state};
pub use stage::{TransformOutcome, transform_stage};
