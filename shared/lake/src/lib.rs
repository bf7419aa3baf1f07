//! The curated zone of the lake (DESIGN.md section 4) as data: curated rows
//! to and from Parquet, with the columns and types derived from the one row
//! schema (`mdp_core::schema`), and reads of a ticker's partitions and whole
//! history. The transform writes through it and the warehouse loaders read
//! through it, so neither depends on the other.

mod curated;
mod layout;
mod parquet;
mod side;

pub use curated::{CuratedError, read_history, read_partition, read_partitions};
pub use layout::{LayoutReport, migrate_layout};
pub use parquet::{ParquetError, decode_parquet, encode_parquet, frame_to_rows, rows_to_frame};
pub use side::{
    decode_corporate_actions, decode_quality_findings, decode_quarantine, encode_corporate_actions,
    encode_quality_findings, encode_quarantine, read_corporate_actions, read_quality_findings,
    read_quarantine, rule_codes,
};
