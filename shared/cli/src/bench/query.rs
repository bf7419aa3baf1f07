//! The tuning guide's query on the table a many-ticker run filled, timed as
//! a client sees it (prepared statement, rows received).

use std::time::{Duration, Instant};

use mdp_core::StageError;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::figures::{Figures, Goal, Unit};

/// The query of the goal table, as written.
pub const LATEST_ROWS_QUERY: &str =
    "SELECT * FROM fact_market_data WHERE ticker='AAPL' ORDER BY date DESC LIMIT 1000";

const WARM_UP_RUNS: usize = 3;
const TIMED_RUNS: usize = 21;

/// Times [`LATEST_ROWS_QUERY`] against `schema` (median of 21 after 3 warm-up
/// runs). `rows` is how many the table holds; `goal` applies at the size.
pub async fn bench_latest_rows_query(
    postgres_url: &str,
    schema: &str,
    rows: u64,
    goal: Option<Goal>,
    figures: &mut Figures,
) -> Result<String, StageError> {
    let failed = |e: sqlx::Error| StageError::permanent(format!("benchmark query: {e}"));
    let mut conn = PgConnection::connect(postgres_url).await.map_err(failed)?;
    sqlx::query(AssertSqlSafe(format!("SET search_path TO \"{schema}\"")))
        .execute(&mut conn)
        .await
        .map_err(failed)?;
    let mut times = Vec::with_capacity(TIMED_RUNS);
    let mut returned = 0;
    for run in 0..WARM_UP_RUNS + TIMED_RUNS {
        let started = Instant::now();
        let got = sqlx::query(LATEST_ROWS_QUERY)
            .fetch_all(&mut conn)
            .await
            .map_err(failed)?;
        let elapsed = started.elapsed();
        returned = got.len();
        if run >= WARM_UP_RUNS {
            times.push(elapsed);
        }
    }
    conn.close().await.map_err(failed)?;
    times.sort();
    let median = times[times.len() / 2];
    let best = times[0];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    figures.add_with_goal(
        "query.latest_1000_rows",
        ms(median),
        Unit::Milliseconds,
        goal,
        format!(
            "{LATEST_ROWS_QUERY} on {rows} rows, {returned} returned; median of {TIMED_RUNS} after {WARM_UP_RUNS} warm-up runs"
        ),
    );
    Ok(format!(
        "the tuning guide's query on {rows} rows ({returned} returned): median {:.2} ms, best {:.2} ms (goal < 5 ms)\n",
        ms(median),
        ms(best)
    ))
}
