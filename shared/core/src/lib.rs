//! Domain of the market data pipeline, shared by every stage and function.
//!
//! Nothing here talks to the network or a database: the chart API response
//! format, tickers, date planning, the stage messages of DESIGN.md section 3,
//! the lake layout of section 4 behind the [`ObjectStore`] port, the curated
//! row of section 6 and its schema, configuration (section 7) and the transient/permanent
//! error classes every handler maps to retry or dead-letter.

pub mod calendar;
pub mod chart;
pub mod config;
pub mod connection;
pub mod crash;
pub mod dates;
pub mod encoding;
pub mod error;
pub mod freshness;
pub mod lake;
pub mod logging;
pub mod messages;
pub mod metrics;
pub mod quality;
pub mod queue;
pub mod row;
pub mod schema;
pub mod source;
pub mod ticker;
pub mod validate;

pub use config::Config;
pub use error::{ErrorClass, StageError};
pub use lake::{Lake, LocalStore, ObjectStore, StoreError, TickerLock, Watermark};
pub use row::{CuratedRow, Indicators, InstrumentMeta};
pub use ticker::Ticker;
