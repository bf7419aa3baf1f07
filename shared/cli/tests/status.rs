//! `mdp status` on a lake with an up-to-date, a stale and a failed ticker:
//! the lag in trading sessions (holidays known), the failed stage of the
//! last run, the warehouse columns, JSON output, and the exit status that
//! lets it serve as a check.

mod common;

use common::*;

const NVDA: &str = "nvda_1d_range_2021-02-01_2022-01-28_split.json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_up_to_date_stale_and_failed_tickers_apart() {
    let server = msft_server().await;
    server.add_series("NVDA", &fixture(NVDA)).unwrap();
    // SIX is an unknown symbol: the chart API answers 404 (no series served).
    let scratch = Scratch::new(&server);
    let up_to = |t: &str, end: &str| {
        scratch.run(
            &["run", "--tickers", t, "--start", "2021-12-01", "--end", end],
            &[],
        )
    };
    assert!(up_to("MSFT", "2022-01-28").status.success());
    assert!(up_to("NVDA", "2021-12-31").status.success());
    assert!(!up_to("SIX", "2022-01-28").status.success());

    // Saturday 2022-01-29: the last expected session is Friday the 28th.
    let now = "2022-01-29T12:00:00Z";
    let out = scratch.run(&["status", "--tickers", "MSFT,NVDA,SIX", "--now", now], &[]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = |t: &str| {
        table
            .lines()
            .find(|l| l.starts_with(t))
            .unwrap()
            .to_string()
    };
    assert!(line("MSFT").contains("up-to-date"), "{table}");
    // January 2022 has 19 sessions to the 28th (New Year's Day fell on a
    // Saturday and was not moved; Martin Luther King Jr. Day on the 17th).
    assert!(
        line("NVDA").contains("STALE") && line("NVDA").contains("19 sessions behind"),
        "{table}"
    );
    assert!(
        line("SIX").contains("FAILED") && line("SIX").contains("fetch failed"),
        "{table}"
    );

    let out = scratch.run(
        &[
            "status",
            "--tickers",
            "MSFT,NVDA,SIX",
            "--now",
            now,
            "--json",
        ],
        &[],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by = |t: &str| {
        json["tickers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["ticker"] == t)
            .unwrap()
            .clone()
    };
    // No queue URLs configured: no dead-letter queue to report.
    assert!(json["dead_letter_queues"].as_object().unwrap().is_empty());
    assert_eq!(by("MSFT")["status"], "up-to-date");
    assert_eq!(by("MSFT")["lag_sessions"], 0);
    assert_eq!(by("MSFT")["last_date"], "2022-01-28");
    assert_eq!(by("MSFT")["warehouse_last_date"], "2022-01-28");
    assert_eq!(by("MSFT")["warehouse_rows"], by("MSFT")["rows"]);
    assert_eq!(by("NVDA")["status"], "stale");
    assert_eq!(by("NVDA")["lag_sessions"], 19);
    assert_eq!(by("SIX")["status"], "failed");
    assert_eq!(by("SIX")["run"]["stages"]["fetch"]["outcome"], "failed");

    // Only up-to-date tickers: exit 0, a usable check.
    let ok = scratch.run(&["status", "--tickers", "MSFT", "--now", now], &[]);
    assert!(ok.status.success(), "{}", text(&ok));
    // Friday 15:00 New York, before that day's close: Thursday is expected.
    let before_close = scratch.run(
        &[
            "status",
            "--tickers",
            "NVDA",
            "--now",
            "2021-12-31T20:00:00Z",
            "--json",
        ],
        &[],
    );
    let json: serde_json::Value = serde_json::from_slice(&before_close.stdout).unwrap();
    assert_eq!(json["tickers"][0]["expected"], "2021-12-30");
    assert_eq!(json["tickers"][0]["status"], "up-to-date", "{json}");
}

/// `mdp run --json` prints the summary for orchestrators; progress goes to
/// stderr, a plain line per finished ticker when stderr is not a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_json_and_progress_lines() {
    let server = msft_server().await;
    let scratch = Scratch::new(&server);
    let out = scratch.run(
        &[
            "run",
            "--tickers",
            "MSFT,SIX",
            "--start",
            "2022-01-03",
            "--end",
            "2022-01-28",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON only");
    assert_eq!(json["succeeded"], false);
    let by = |t: &str| {
        json["tickers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["ticker"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(by("MSFT")["status"], "ok");
    assert_eq!(by("MSFT")["rows_loaded"], 19);
    assert_eq!(by("SIX")["status"], "failed");
    assert_eq!(by("SIX")["error_class"], "permanent");
    assert!(by("SIX")["error"].as_str().unwrap().contains("404"));
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.lines().any(|l| l.starts_with("[2/2] ")),
        "{progress}"
    );
    assert!(
        progress
            .lines()
            .any(|l| l.contains("MSFT ok (19 rows loaded)")),
        "{progress}"
    );
}
