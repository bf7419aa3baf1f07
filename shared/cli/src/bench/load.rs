//! The warehouse load benchmark: a lake of `tickers` × `years` of daily rows
//! (1,260,000 rows for 500 × 10), loaded into Postgres by `mdp load` with
//! each strategy, side by side with `psql \copy` of the same rows as CSV
//! into an identically indexed table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Datelike;
use mdp_core::row::COLUMNS;
use mdp_core::{Config, CuratedRow, InstrumentMeta, Lake, LocalStore, StageError};
use mdp_devtools::synthetic_bars;
use mdp_lake::encode_parquet;
use mdp_transform::{lake_now, merge_history};

use super::child::run_child;
use super::figures::{Figures, Goal, Unit};
use super::series::{SERIES_FIRST_DAY, bench_ticker, without_pipeline_env};

pub struct LoadBenchOptions {
    pub tickers: usize,
    pub years: u32,
    pub postgres_url: String,
}

const SCHEMA: &str = "mdp_bench_load";
const COPY_TABLE: &str = "fact_market_data_psql_copy";
/// The most memory a load may take, whatever its size.
const LOAD_PEAK_GOAL_MB: f64 = 128.0;

struct Timed {
    elapsed: Duration,
    peak_mb: Option<f64>,
}

pub async fn run_load_bench(
    options: &LoadBenchOptions,
    figures: &mut Figures,
) -> Result<String, StageError> {
    let dir = std::env::temp_dir().join(format!("mdp-load-bench-{}", std::process::id()));
    let lake_dir = dir.join("lake");
    let csv = dir.join("rows.csv");
    let started = Instant::now();
    let (names, rows) = write_lake_and_csv(&lake_dir, &csv, options).await?;
    let generate = started.elapsed();

    let vars = |table: &str| {
        vec![
            (
                "MARKET_DATA_LAKE_URI".to_string(),
                format!("file://{}", lake_dir.display()),
            ),
            ("WAREHOUSE_URL".to_string(), options.postgres_url.clone()),
            ("WAREHOUSE_SCHEMA".to_string(), SCHEMA.to_string()),
            ("WAREHOUSE_TABLE_MARKET_DATA".to_string(), table.to_string()),
        ]
    };
    let reset = |table: &'static str| {
        let vars = vars(table);
        async move {
            let config =
                Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                    .map_err(|e| StageError::permanent(e.to_string()))?;
            let wh = mdp_warehouse::connect_rows(&config).await?;
            wh.drop_table().await?;
            wh.migrate().await?;
            wh.close().await;
            Ok::<(), StageError>(())
        }
    };

    // psql \copy of the same rows into an identically indexed table.
    reset(COPY_TABLE).await?;
    let copy = psql_copy(&options.postgres_url, &csv)?;

    let table = "fact_market_data";
    reset(table).await?;
    let append = mdp_load(&vars(table), "append", None).await?;
    let truncate = mdp_load(&vars(table), "truncate_insert", None).await?;
    reset(table).await?;
    let half: Vec<String> = names[..names.len() / 2].to_vec();
    mdp_load(&vars(table), "append", Some(&half.join(","))).await?;
    let upsert = mdp_load(&vars(table), "upsert", None).await?;
    let _ = std::fs::remove_dir_all(&dir);

    let secs = |d: Duration| d.as_secs_f64();
    let size = format!(
        "{rows} rows ({} tickers × {} years)",
        options.tickers, options.years
    );
    figures.add(
        "load.psql_copy",
        secs(copy.elapsed),
        Unit::Seconds,
        format!("psql \\copy of {size} as CSV into an empty, identically indexed table"),
    );
    for (strategy, timed, what) in [
        ("append", &append, "into an empty table"),
        ("upsert", &upsert, "into a table holding half the tickers"),
        (
            "truncate_insert",
            &truncate,
            "into a table holding every row",
        ),
    ] {
        figures.add(
            &format!("load.{strategy}"),
            secs(timed.elapsed),
            Unit::Seconds,
            format!(
                "mdp load of {size} from the lake, strategy {strategy}, {what}; wall of the process"
            ),
        );
        if let Some(peak) = timed.peak_mb {
            figures.add_with_goal(
                &format!("load.{strategy}.peak_rss"),
                peak,
                Unit::Megabytes,
                Some(Goal::AtMost(LOAD_PEAK_GOAL_MB)),
                "peak resident memory of that mdp load (VmHWM)",
            );
        }
    }

    let base = secs(copy.elapsed);
    let line = |name: &str, t: &Timed, target: &str| {
        format!(
            "  {name:<34} {:>7.2} s  {:>5.2}× psql  peak {:>6}  {target}\n",
            secs(t.elapsed),
            secs(t.elapsed) / base,
            t.peak_mb
                .map(|m| format!("{m:.0} MB"))
                .unwrap_or_else(|| "-".into()),
        )
    };
    let mut report = format!(
        "warehouse load of {size} into Postgres, per strategy (lake written in {:.1} s):\n",
        secs(generate)
    );
    report.push_str(&format!(
        "  {:<34} {:>7.2} s  {:>5.2}× psql\n",
        "psql \\copy CSV (same indexes)", base, 1.0
    ));
    report.push_str(&line(
        "mdp load, append (empty table)",
        &append,
        "(goal ≤ 0.7×)",
    ));
    report.push_str(&line(
        "mdp load, upsert (half-full table)",
        &upsert,
        "(goal ≤ 0.7×)",
    ));
    report.push_str(&line(
        "mdp load, truncate_insert (full)",
        &truncate,
        "(goal ≤ 0.7×)",
    ));
    report.push_str("  peak memory target for every load: ≤ 128 MB\n");
    Ok(report)
}

fn psql_copy(url: &str, csv: &Path) -> Result<Timed, StageError> {
    let command = format!(
        "\\copy {SCHEMA}.{COPY_TABLE} ({}) FROM '{}' WITH (FORMAT csv)",
        COLUMNS.join(", "),
        csv.display()
    );
    let started = Instant::now();
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", &command])
        .output()
        .map_err(|e| StageError::permanent(format!("running psql: {e}")))?;
    if !out.status.success() {
        return Err(StageError::permanent(format!(
            "psql \\copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(Timed {
        elapsed: started.elapsed(),
        peak_mb: None,
    })
}

/// Runs `mdp load` in a child process (so its peak memory is its own).
async fn mdp_load(
    vars: &[(String, String)],
    strategy: &str,
    tickers: Option<&str>,
) -> Result<Timed, StageError> {
    let exe = std::env::current_exe().map_err(|e| StageError::permanent(e.to_string()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("load");
    if let Some(t) = tickers {
        cmd.args(["--tickers", t]);
    }
    without_pipeline_env(&mut cmd)
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("WAREHOUSE_LOAD_STRATEGY", strategy)
        .env("RUST_LOG", "warn");
    let run = run_child(cmd, &format!("mdp load ({strategy})")).await?;
    Ok(Timed {
        elapsed: run.wall,
        peak_mb: Some(run.peak_rss_mb),
    })
}

/// Writes the synthetic lake (one Parquet file per ticker-year, as the
/// transform writes them) and the same rows as CSV for psql.
async fn write_lake_and_csv(
    lake_dir: &Path,
    csv: &PathBuf,
    options: &LoadBenchOptions,
) -> Result<(Vec<String>, usize), StageError> {
    let lake = Lake::new(Arc::new(LocalStore::new(lake_dir)));
    std::fs::create_dir_all(lake_dir).map_err(|e| StageError::permanent(e.to_string()))?;
    let file = std::fs::File::create(csv).map_err(|e| StageError::permanent(e.to_string()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let sessions = options.years as usize * 252;
    let now = lake_now();
    let first_day = SERIES_FIRST_DAY;
    let mut names = Vec::with_capacity(options.tickers);
    let mut total = 0;
    for k in 0..options.tickers {
        let name = bench_ticker(k);
        let bars = synthetic_bars(first_day, sessions, k as u64);
        let meta = InstrumentMeta {
            currency: Some("USD".into()),
            exchange: Some("NMS".into()),
            instrument_type: Some("EQUITY".into()),
            regular_market_price: Some(bars.last().map(|b| b.close).unwrap_or(0.0)),
            fifty_two_week_high: Some(200.0),
            fifty_two_week_low: Some(50.0),
            long_name: Some(format!("{name} Synthetic Inc.")),
            short_name: Some(name.clone()),
        };
        let rows = merge_history(&name, &[], &bars, &meta, now);
        let ticker = mdp_core::Ticker::parse(&name).expect("valid ticker");
        let mut start = 0;
        while start < rows.len() {
            let year = rows[start].date().year();
            let end = rows[start..]
                .iter()
                .position(|r| r.date().year() != year)
                .map_or(rows.len(), |p| start + p);
            let bytes = encode_parquet(
                &rows[start..end],
                mdp_core::config::ParquetCompression::Snappy,
            )
            .map_err(|e| StageError::permanent(e.to_string()))?;
            lake.store()
                .put(&Lake::curated_key(&ticker, year), bytes)
                .await?;
            start = end;
        }
        for row in &rows {
            write_csv_row(&mut out, row).map_err(|e| StageError::permanent(e.to_string()))?;
        }
        total += rows.len();
        names.push(name);
    }
    out.flush()
        .map_err(|e| StageError::permanent(e.to_string()))?;
    Ok((names, total))
}

fn write_csv_row(out: &mut impl Write, r: &CuratedRow) -> std::io::Result<()> {
    // Debug keeps every float exact and uses exponents where needed; Postgres reads both.
    let f = |v: Option<f64>| v.map(|x| format!("{x:?}")).unwrap_or_default();
    let s = |v: &Option<String>| {
        v.as_ref()
            .map(|x| format!("\"{}\"", x.replace('"', "\"\"")))
            .unwrap_or_default()
    };
    let ts = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let b = &r.bar;
    let mut cells = vec![
        r.ticker.clone(),
        b.date.to_string(),
        f(b.open),
        f(b.high),
        f(b.low),
        f(Some(b.close)),
        f(b.adj_close),
        b.volume.map(|v| v.to_string()).unwrap_or_default(),
    ];
    cells.extend(r.indicators.values().iter().map(|v| f(*v)));
    let m = &r.meta;
    cells.extend([
        s(&m.currency),
        s(&m.exchange),
        s(&m.instrument_type),
        f(m.regular_market_price),
        f(m.fifty_two_week_high),
        f(m.fifty_two_week_low),
        s(&m.long_name),
        s(&m.short_name),
        ts(r.created_at),
        ts(r.updated_at),
    ]);
    debug_assert_eq!(cells.len(), COLUMNS.len());
    writeln!(out, "{}", cells.join(","))
}
