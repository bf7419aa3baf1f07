//! The market data source adapter: the Yahoo Finance chart API client, the
//! fetch stage that lands raw responses in the lake, and a local chart server
//! that replays recorded responses (the demo and tests run the real client
//! against it).

pub mod client;
pub mod replay;
pub mod stage;

pub use client::{ChartClient, ChartClientSettings};
pub use replay::ChartReplayServer;
pub use stage::{FetchOutcome, fetch_stage};
