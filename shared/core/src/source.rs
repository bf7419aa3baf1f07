//! Port to the market data source (the Yahoo chart API in production, a local
//! server replaying recorded responses in the demo and tests).

use async_trait::async_trait;
use chrono::NaiveDate;

use crate::chart::ChartSeries;
use crate::error::StageError;
use crate::ticker::Ticker;

/// A successful answer for one ticker and range.
#[derive(Debug, Clone)]
pub struct ChartFetch {
    /// The response body exactly as received (it lands in the raw zone).
    pub body: Vec<u8>,
    pub content: ChartContent,
    /// HTTP requests made, retries included.
    pub attempts: u32,
}

#[derive(Debug, Clone)]
pub enum ChartContent {
    Series(Box<ChartSeries>),
    /// The API says it has no data for the range (400 "Data doesn't exist…").
    NoData(String),
}

#[async_trait]
pub trait MarketDataSource: Send + Sync {
    /// Daily bars of `ticker` covering `start..=end` (inclusive), in one
    /// request plus retries. Errors are already classified.
    async fn fetch_daily(
        &self,
        ticker: &Ticker,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<ChartFetch, StageError>;
}
