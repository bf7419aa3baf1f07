//! What `mdp` does with bad input and broken state: a request that plans
//! nothing is a usage error (exit 2, one line); a corrupt watermark or
//! partition fails its ticker only (the others run, the summary prints,
//! exit 1) and names the object and the repair, `mdp state rebuild`, which
//! then brings the ticker back.

mod common;

use common::*;

const NVDA: &str = "nvda_1d_range_2021-02-01_2022-01-28_split.json";

async fn two_ticker_server() -> mdp_devtools::ChartReplayServer {
    let server = msft_server().await;
    server.add_series("NVDA", &fixture(NVDA)).unwrap();
    server
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_plan_nothing_are_usage_errors() {
    let server = msft_server().await;
    let scratch = Scratch::new(&server);
    for (args, needle) in [
        (vec!["run", "--tickers", ""], "no valid ticker"),
        (vec!["run", "--tickers", ".,.."], "no valid ticker"),
        (vec!["run", "--tickers", "no way!"], "invalid ticker"),
        (
            vec![
                "run",
                "--tickers",
                "MSFT",
                "--start",
                "2025-02-01",
                "--end",
                "2025-01-01",
            ],
            "after end",
        ),
        (
            vec![
                "run",
                "--tickers",
                "MSFT",
                "--start",
                "1800-01-01",
                "--end",
                "1800-02-01",
            ],
            "outside 1970-01-01",
        ),
        (
            vec!["run", "--tickers", "MSFT", "--date", "2999-01-01"],
            "outside 1970-01-01",
        ),
        (vec!["load", "--tickers", ".."], "invalid ticker"),
        (
            vec!["state", "rebuild", "--tickers", ""],
            "at least one ticker",
        ),
    ] {
        let out = scratch.run(&args, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line: {err}"
        );
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(server.received().is_empty(), "no request was made");
    assert!(!scratch.lake_dir().exists(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_watermark_fails_its_ticker_only_until_rebuilt() {
    let server = two_ticker_server().await;
    let scratch = Scratch::new(&server);
    let args = [
        "run",
        "--tickers",
        "MSFT,NVDA",
        "--start",
        "2021-02-01",
        "--end",
        "2021-03-31",
    ];
    assert!(scratch.run(&args, &[]).status.success());
    std::fs::write(
        scratch.lake_dir().join("state/ticker=MSFT.json"),
        b"{\"last_date\": 7",
    )
    .unwrap();

    let out = scratch.run(
        &["run", "--tickers", "MSFT,NVDA", "--date", "2021-04-30"],
        &[],
    );
    let summary = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("NVDA") && l.contains(" ok ")),
        "{summary}"
    );
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("MSFT") && l.contains("FAILED")),
        "{summary}"
    );
    assert!(
        summary.contains("state/ticker=MSFT.json")
            && summary.contains("mdp state rebuild --tickers MSFT"),
        "{summary}"
    );

    let rebuilt = scratch.run(&["state", "rebuild", "--tickers", "MSFT"], &[]);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt));
    assert!(
        stdout(&rebuilt).contains("42 rows, last date 2021-03-31"),
        "{}",
        text(&rebuilt)
    );
    let out = scratch.run(
        &["run", "--tickers", "MSFT,NVDA", "--date", "2021-04-30"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    // April 2021: 21 sessions (Good Friday closed); every MSFT row reached the warehouse.
    let lake = scratch.lake_rows().await;
    assert_eq!(lake.len(), 42 + 21);
    let msft: Vec<_> = scratch
        .warehouse_rows()
        .await
        .into_iter()
        .filter(|r| r.ticker == "MSFT")
        .collect();
    assert_eq!(msft, lake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_partition_fails_its_ticker_and_rebuild_quarantines_it() {
    let server = two_ticker_server().await;
    let scratch = Scratch::new(&server);
    let args = [
        "run",
        "--tickers",
        "MSFT,NVDA",
        "--start",
        "2021-11-01",
        "--end",
        "2022-01-28",
    ];
    assert!(scratch.run(&args, &[]).status.success());
    let partition = scratch
        .lake_dir()
        .join("curated/market_data/ticker=MSFT/year=2021/part-0.parquet");
    std::fs::write(&partition, b"PAR1 not really").unwrap();

    let january = [
        "run",
        "--tickers",
        "MSFT,NVDA",
        "--start",
        "2022-01-03",
        "--end",
        "2022-01-28",
    ];
    let out = scratch.run(&january, &[]);
    let summary = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("NVDA") && l.contains(" ok ")),
        "{summary}"
    );
    assert!(
        summary.contains("ticker=MSFT/year=2021/part-0.parquet")
            && summary.contains("mdp state rebuild --tickers MSFT"),
        "{summary}"
    );

    let rebuilt = scratch.run(&["state", "rebuild", "--tickers", "MSFT"], &[]);
    let report = stdout(&rebuilt);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt));
    assert!(
        report.contains("quarantined curated/market_data/ticker=MSFT/year=2021"),
        "{report}"
    );
    assert!(
        report.contains("mdp run --tickers MSFT --start 2021-01-01 --end 2021-12-31"),
        "{report}"
    );
    assert!(!partition.exists());
    assert!(
        scratch
            .lake_dir()
            .join("quarantine/curated/market_data/ticker=MSFT/year=2021/part-0.parquet")
            .is_file()
    );
    // The printed command brings 2021 back; the lake then equals the warehouse.
    let refetch = scratch.run(
        &[
            "run",
            "--tickers",
            "MSFT",
            "--start",
            "2021-11-01",
            "--end",
            "2021-12-31",
        ],
        &[],
    );
    assert!(refetch.status.success(), "{}", text(&refetch));
    let lake = scratch.lake_rows().await;
    assert_eq!(lake.len(), 62);
    let msft: Vec<_> = scratch
        .warehouse_rows()
        .await
        .into_iter()
        .filter(|r| r.ticker == "MSFT")
        .collect();
    // Values, not timestamps: the refetch writes the lake rows anew (new
    // created_at) while the warehouse upsert keeps the first load's
    // timestamps, so the two differ whenever the runs straddle a second.
    assert_eq!(msft.len(), lake.len());
    for (loaded, in_lake) in msft.iter().zip(&lake) {
        assert!(loaded.same_values(in_lake), "{loaded:?} != {in_lake:?}");
    }
}
