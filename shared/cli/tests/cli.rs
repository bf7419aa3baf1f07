//! The `mdp` binary as a user runs it: `mdp demo` offline and repeatable,
//! `mdp run` exit codes, configuration errors, and the lake read by pyarrow
//! and duckdb (tests/check_lake.py).

use std::path::Path;
use std::process::{Command, Output};

use mdp_core::Config;
use mdp_devtools::ChartReplayServer;

fn mdp(dir: &Path, args: &[&str], extra_env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdp"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn warehouse_rows(dir: &Path) -> Vec<mdp_core::CuratedRow> {
    let url = format!("sqlite://{}", dir.join("data/warehouse.db").display());
    let config = Config::from_lookup(|k| (k == "WAREHOUSE_URL").then(|| url.clone())).unwrap();
    let warehouse = mdp_warehouse::connect_rows(&config).await.unwrap();
    let rows = warehouse.read_rows(None).await.unwrap();
    warehouse.close().await;
    rows
}

#[tokio::test]
async fn demo_runs_offline_with_defaults_and_a_rerun_changes_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let first = mdp(dir.path(), &["demo"], &[]);
    let stdout = text(&first.stdout);
    assert!(first.status.success(), "{stdout}\n{}", text(&first.stderr));
    for t in ["MSFT", "NVDA", "AAPL", "BTC-USD"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(t) && l.contains(" ok ")),
            "{t} in:\n{stdout}"
        );
    }
    // The default lake and warehouse, relative to the working directory.
    let data = dir.path().join("data");
    assert!(data.join("raw/yahoo/chart/ticker=MSFT").is_dir());
    assert!(
        data.join("curated/market_data/ticker=BTC-USD/year=2020/part-0.parquet")
            .is_file()
    );
    assert!(data.join("state/ticker=NVDA.json").is_file());
    // And the HTML report, whose index it names.
    assert!(
        stdout.contains("report:    ./data/reports/index.html"),
        "{stdout}"
    );
    assert!(data.join("reports/index.html").is_file());
    assert!(data.join("reports/tickers/BTC-USD.html").is_file());
    let rows = warehouse_rows(dir.path()).await;
    // 252 MSFT + 252 NVDA + 49 AAPL + 366 BTC-USD bars with a close.
    assert_eq!(rows.len(), 252 + 252 + 49 + 366);

    let second = mdp(dir.path(), &["demo"], &[]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(
        warehouse_rows(dir.path()).await,
        rows,
        "a second demo changes no row"
    );

    // pyarrow and duckdb read the lake as written, and it equals the warehouse.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/check_lake.py");
    let check = Command::new("python3")
        .arg(&script)
        .arg(&data)
        .arg(data.join("warehouse.db"))
        .output()
        .expect("python3 runs (make test / .ci/run install pyarrow and duckdb)");
    assert!(
        check.status.success(),
        "check_lake.py:\n{}\n{}",
        text(&check.stdout),
        text(&check.stderr)
    );
}

// Multi-threaded: the replay server must answer while this thread waits on the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exits_1_when_a_ticker_fails_and_still_completes_the_others() {
    let server = ChartReplayServer::start().await.unwrap();
    let msft = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/yahoo/msft_1d_range_2021-02-01_2022-01-28_dividends.json"),
    )
    .unwrap();
    server.add_series("MSFT", &msft).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = mdp(
        dir.path(),
        &[
            "run",
            "--tickers",
            "MSFT,SIX",
            "--start",
            "2021-03-01",
            "--end",
            "2021-03-31",
        ],
        &[("YAHOO_FINANCE_API_BASE_URL", server.base_url())],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let msft_line = stdout.lines().find(|l| l.starts_with("MSFT")).unwrap();
    let fields: Vec<&str> = msft_line.split_whitespace().collect();
    assert_eq!(
        &fields[1..6],
        ["ok", "2021-03-01..2021-03-31", "23", "23", "23"],
        "{msft_line}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("SIX") && l.contains("FAILED")),
        "{stdout}"
    );
    assert!(stdout.contains("404"), "{stdout}");
    assert_eq!(server.request_count("MSFT"), 1);
    assert_eq!(server.request_count("SIX"), 1, "a 404 is not retried");

    let ok = mdp(
        dir.path(),
        &["run", "--tickers", "msft", "--date", "2021-04-09"],
        &[("YAHOO_FINANCE_API_BASE_URL", server.base_url())],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    assert!(
        text(&ok.stdout).contains("2021-04-01..2021-04-09"),
        "{}",
        text(&ok.stdout)
    );
}

#[test]
fn bad_configuration_fails_at_start_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = mdp(
        dir.path(),
        &["run"],
        &[("WAREHOUSE_LOAD_STRATEGY", "merge".into())],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("WAREHOUSE_LOAD_STRATEGY")
            && stderr.contains("upsert, append, truncate_insert"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing is written before the configuration is valid"
    );

    let out = mdp(dir.path(), &["run", "--start", "2021-03-01"], &[]);
    assert_eq!(out.status.code(), Some(2), "--start needs --end");
}

#[test]
fn report_writes_where_asked_and_refuses_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // An empty lake: an index saying so, at the default place.
    let out = mdp(dir.path(), &["report"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "./data/reports/index.html\n");
    assert!(dir.path().join("data/reports/index.html").is_file());
    // Chosen tickers into a folder: ^GSPC's page under its lake encoding.
    let out = mdp(
        dir.path(),
        &["report", "--tickers", "^gspc", "--out", "site"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "site/index.html\n");
    assert!(dir.path().join("site/tickers/%5EGSPC.html").is_file());
    std::fs::write(dir.path().join("a-file"), "x").unwrap();
    for (args, needle) in [
        (vec!["report", "--tickers", "no way!"], "invalid ticker"),
        (vec!["report", "--out", "a-file"], "not a folder"),
        (
            vec!["report", "--out", "ftp://host/x"],
            "s3://BUCKET/PREFIX",
        ),
    ] {
        let out = mdp(dir.path(), &args, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn help_lists_the_user_commands_and_hides_the_development_ones() {
    let dir = tempfile::tempdir().unwrap();
    let help = mdp(dir.path(), &["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    let stdout = text(&help.stdout);
    let commands: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        [
            "run",
            "status",
            "demo",
            "load",
            "report",
            "warehouse",
            "state",
            "lake",
            "dlq",
            "help"
        ],
        "{stdout}"
    );
    assert!(stdout.contains("WAREHOUSE_URL"), "{stdout}");

    // Hidden, not gone; the URL's value (it may hold a password) is not shown.
    let bench = mdp(
        dir.path(),
        &["bench", "--help"],
        &[("MDP_BENCH_POSTGRES_URL", "postgres://u:secret@db/x".into())],
    );
    assert_eq!(bench.status.code(), Some(0), "{}", text(&bench.stderr));
    let bench_help = text(&bench.stdout);
    assert!(
        bench_help.contains("[env: MDP_BENCH_POSTGRES_URL]") && !bench_help.contains("secret"),
        "{bench_help}"
    );
    let serve = mdp(dir.path(), &["serve-charts", "--help"], &[]);
    assert_eq!(serve.status.code(), Some(0), "{}", text(&serve.stderr));

    let run = mdp(dir.path(), &["run", "--help"], &[]);
    assert!(
        text(&run.stdout).contains("MARKET_DATA_DEFAULT_TICKERS"),
        "{}",
        text(&run.stdout)
    );
}

#[test]
fn a_mistyped_command_exits_2_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    // clap suggests by Jaro similarity above 0.7: `rum` is close enough to
    // `run`; a transposition in a three-letter word (`rnu`, 0.56) is not.
    for (typed, suggested) in [("rum", Some("run")), ("deom", Some("demo")), ("rnu", None)] {
        let out = mdp(dir.path(), &[typed], &[]);
        assert_eq!(out.status.code(), Some(2), "{typed}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("unrecognized subcommand '{typed}'")),
            "{stderr}"
        );
        match suggested {
            Some(s) => assert!(
                stderr.contains(&format!("similar subcommand exists: '{s}'")),
                "{stderr}"
            ),
            None => assert!(!stderr.contains("similar subcommand"), "{stderr}"),
        }
        assert!(
            !stderr.contains('\u{1b}'),
            "no colour when stderr is not a terminal: {stderr:?}"
        );
    }
    assert!(!dir.path().join("data").exists());
}
