//! The market data source adapter: the Yahoo Finance chart API client and
//! the fetch stage that lands raw responses in the lake. Its tests run the
//! real client against the local replay server of mdp-devtools.

pub mod client;
pub mod stage;

pub use client::{AttemptError, ChartClient, ChartClientSettings, ChartError};
pub use stage::{FetchError, FetchOutcome, fetch_stage};
