//! Runs that overlap or die converge: two `mdp run` processes of one ticker
//! at once end as if run one after the other; a process killed (SIGKILL) at
//! any write point of transform or load is repaired by the next run, the
//! lake and the warehouse then equal those of an uninterrupted run; a load
//! that never happened is caught up. The points are the debug builds'
//! `MDP_CRASH_AT` / `MDP_PAUSE_AT` (mdp_core::crash).

mod common;

use common::*;
use mdp_core::CuratedRow;

const RANGE: [&str; 6] = ["run", "--tickers", "MSFT", "--start", "2021-11-01", "--end"];

fn range_args() -> Vec<&'static str> {
    // Across the year boundary: two partitions per run.
    let mut args = RANGE.to_vec();
    args.push("2022-01-28");
    args
}

/// Two processes of one ticker on one lake, paused right after reading the
/// history so that both would read the same (empty) history without the
/// ticker lock: both succeed and every row of both ranges is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_one_ticker_at_once_keep_both_ranges() {
    let server = msft_server().await;
    let scratch = Scratch::new(&server);
    let pause = [("MDP_PAUSE_AT", "transform.after_history_read:400")];
    let first = scratch
        .command(
            &[
                "run",
                "--tickers",
                "MSFT",
                "--start",
                "2021-02-01",
                "--end",
                "2021-03-31",
            ],
            &pause,
        )
        .spawn()
        .unwrap();
    let second = scratch
        .command(
            &[
                "run",
                "--tickers",
                "MSFT",
                "--start",
                "2021-06-01",
                "--end",
                "2021-07-30",
            ],
            &pause,
        )
        .spawn()
        .unwrap();
    let (a, b) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));

    let lake = scratch.lake_rows().await;
    let april: chrono::NaiveDate = "2021-04-01".parse().unwrap();
    let feb_mar = lake.iter().filter(|r| r.date() < april).count();
    let jun_jul = lake.len() - feb_mar;
    // NYSE sessions: February 2021 19 (Presidents' Day), March 23; June 22,
    // July 1-30 21 (Independence Day observed on the 5th).
    assert_eq!(
        (feb_mar, jun_jul),
        (42, 43),
        "both runs' rows are in the partition"
    );
    assert_eq!(scratch.watermark()["last_date"], "2021-07-30");
    assert_eq!(
        scratch.warehouse_rows().await,
        lake,
        "the warehouse equals the lake"
    );
}

/// An uninterrupted run, for comparison.
async fn reference() -> (Vec<CuratedRow>, Vec<CuratedRow>) {
    let server = msft_server().await;
    let scratch = Scratch::new(&server);
    let out = scratch.run(&range_args(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    (scratch.lake_rows().await, scratch.warehouse_rows().await)
}

/// Every write point of fetch, transform and load: the first run is killed
/// there, the second (the same command) repairs everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_at_any_write_point_is_repaired_by_the_next() {
    let (expected_lake, expected_warehouse) = reference().await;
    // NYSE sessions: November 2021 21, December 22, January 1-28 2022 19.
    assert_eq!(expected_lake.len(), 62);
    for point in [
        "store.put.before_rename#1", // the raw response
        "store.put.before_rename#2", // the first partition
        "transform.after_partition#1",
        "transform.before_watermark",
        "store.put.before_rename#4", // the watermark
        "transform.after_watermark",
        "load.before_commit",
        "load.after_commit",
        "load.before_record",
    ] {
        let server = msft_server().await;
        let scratch = Scratch::new(&server);
        let killed = scratch.run(&range_args(), &[("MDP_CRASH_AT", point)]);
        assert!(
            !killed.status.success(),
            "{point}: the run was killed\n{}",
            text(&killed)
        );
        assert!(
            String::from_utf8_lossy(&killed.stderr).contains("MDP_CRASH_AT"),
            "{point}: the crash point was reached\n{}",
            text(&killed)
        );
        let rerun = scratch.run(&range_args(), &[]);
        assert!(
            rerun.status.success(),
            "{point}: the rerun succeeds\n{}",
            text(&rerun)
        );
        let lake = scratch.lake_rows().await;
        assert_same_values(&lake, &expected_lake, point);
        let warehouse = scratch.warehouse_rows().await;
        assert_same_values(&warehouse, &expected_warehouse, point);
        assert_eq!(
            warehouse, lake,
            "{point}: the warehouse equals the lake, timestamps too"
        );
        // A third run finds nothing to do and changes nothing.
        let again = scratch.run(&range_args(), &[]);
        assert!(again.status.success(), "{point}\n{}", text(&again));
        assert_eq!(
            scratch.warehouse_rows().await,
            warehouse,
            "{point}: idempotent"
        );
    }
}

/// A load that failed (the warehouse file locked by another writer) leaves
/// the warehouse behind; the next scheduled run, with nothing new to fetch,
/// loads what was missed across the year boundary instead of saying
/// "up-to-date".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_is_caught_up_by_the_next_run() {
    let server = msft_server().await;
    let scratch = Scratch::new(&server);
    let killed = scratch.run(&range_args(), &[("MDP_CRASH_AT", "load.before_commit")]);
    assert!(!killed.status.success());
    assert!(scratch.warehouse_rows().await.is_empty());
    let lake = scratch.lake_rows().await;
    assert_eq!(lake.len(), 62);

    // The scheduled path: up to the last date, incremental from the watermark.
    let next = scratch.run(&["run", "--tickers", "MSFT", "--date", "2022-01-28"], &[]);
    let stdout = String::from_utf8_lossy(&next.stdout).to_string();
    assert!(next.status.success(), "{}", text(&next));
    assert!(stdout.contains("caught-up"), "{stdout}");
    assert_eq!(scratch.warehouse_rows().await, lake);
    let again = scratch.run(&["run", "--tickers", "MSFT", "--date", "2022-01-28"], &[]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("up-to-date"),
        "{}",
        text(&again)
    );
}
