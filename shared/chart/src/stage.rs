//! The fetch stage: one chart request per ticker for the planned range; the
//! body lands unchanged in the raw zone before anything parses it further.

use mdp_core::messages::{FetchRequest, MESSAGE_VERSION, TransformRequest};
use mdp_core::source::{ChartContent, MarketDataSource};
use mdp_core::{ErrorClass, Lake, StageError, StoreError, Ticker};

/// Why a fetch message could not be handled (the request itself fails with
/// the source's own error).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("fetch request for {ticker}: start {start} is after end {end}")]
    BadRange {
        ticker: Ticker,
        start: chrono::NaiveDate,
        end: chrono::NaiveDate,
    },
    /// The source answered with another symbol's chart: landing it would
    /// put another instrument's prices under this ticker.
    #[error("{ticker}: the chart answered is for another symbol, {symbol}; not landed")]
    OtherSymbol { ticker: Ticker, symbol: String },
    #[error("landing the raw response of {ticker}")]
    Land {
        ticker: Ticker,
        #[source]
        source: StoreError,
    },
}

impl FetchError {
    pub fn class(&self) -> ErrorClass {
        match self {
            FetchError::BadRange { .. } | FetchError::OtherSymbol { .. } => ErrorClass::Permanent,
            FetchError::Land { source, .. } => source.class(),
        }
    }
}

impl From<FetchError> for StageError {
    fn from(e: FetchError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

#[derive(Debug, Clone)]
pub struct FetchOutcome {
    /// Bars with a close dated inside the requested range.
    pub bars_in_range: usize,
    /// HTTP requests made, retries included.
    pub attempts: u32,
    /// Where the raw response landed, when the API answered with a chart.
    pub raw_key: Option<String>,
    /// The transform message; `None` when there is nothing to transform.
    pub next: Option<TransformRequest>,
}

pub async fn fetch_stage(
    source: &dyn MarketDataSource,
    lake: &Lake,
    request: &FetchRequest,
) -> Result<FetchOutcome, StageError> {
    let ticker = &request.ticker;
    if request.start > request.end {
        return Err(FetchError::BadRange {
            ticker: ticker.clone(),
            start: request.start,
            end: request.end,
        }
        .into());
    }
    let fetched = source
        .fetch_daily(ticker, request.start, request.end)
        .await?;
    let series = match fetched.content {
        ChartContent::NoData(why) => {
            tracing::info!(%ticker, start = %request.start, end = %request.end, "no data for the range: {why}");
            return Ok(FetchOutcome {
                bars_in_range: 0,
                attempts: fetched.attempts,
                raw_key: None,
                next: None,
            });
        }
        ChartContent::Series(series) => series,
    };
    // The chart client already refuses these; this keeps any source honest.
    if let Some(symbol) = &series.symbol
        && !symbol.eq_ignore_ascii_case(ticker.as_str())
    {
        return Err(FetchError::OtherSymbol {
            ticker: ticker.clone(),
            symbol: symbol.clone(),
        }
        .into());
    }
    let raw_key = Lake::raw_key(ticker, request.start, request.end);
    lake.store()
        .put(&raw_key, fetched.body)
        .await
        .map_err(|source| FetchError::Land {
            ticker: ticker.clone(),
            source,
        })?;
    let bars_in_range = series.bars_in_range(request.start, request.end).len();
    let next = if bars_in_range == 0 {
        tracing::info!(%ticker, start = %request.start, end = %request.end, "no bars with a close in the range");
        None
    } else {
        Some(TransformRequest {
            v: MESSAGE_VERSION,
            run_id: request.run_id.clone(),
            ticker: ticker.clone(),
            raw_key: raw_key.clone(),
            start: request.start,
            end: request.end,
        })
    };
    Ok(FetchOutcome {
        bars_in_range,
        attempts: fetched.attempts,
        raw_key: Some(raw_key),
        next,
    })
}
