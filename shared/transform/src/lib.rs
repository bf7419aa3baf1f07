//! The transform side of the pipeline: section 5 indicators, merging fetched
//! bars into the stored history, and the curated Parquet lake.

pub mod history;
pub mod indicators;
pub mod parquet;
pub mod stage;

pub use history::{lake_now, merge_history};
pub use indicators::compute_indicators;
pub use parquet::{decode_parquet, encode_parquet};
pub use stage::{TransformOutcome, read_history, read_partition, transform_stage};
