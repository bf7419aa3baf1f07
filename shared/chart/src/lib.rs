//! The market data source adapter: the Yahoo Finance chart API client and
//! the fetch stage that lands raw responses in the lake. Its tests run the
//! real client against the local replay server of mdp-devtools.

pub mod budget;
pub mod client;
pub mod stage;

pub use budget::RateLimiter;
pub use client::{AttemptError, ChartClient, ChartClientSettings, ChartError, OversizedBody};
pub use stage::{FetchError, FetchOutcome, fetch_stage};
