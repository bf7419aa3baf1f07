//! The offline HTML report as a person sees it: a lake built by the real
//! pipeline over the recorded responses, the report written from it, then
//! headless Chromium opening the index and ticker pages from disk (no
//! server), with console logging on. No console error, and the rendered DOM
//! holds the tables, the SVG charts and the names; the index's link to a
//! ticker whose file name is percent-encoded (^GSPC) opens its page.
//! Screenshots are kept under $CARGO_TARGET_DIR/test-artifacts/report/.
//!
//! Needs Debian's `chromium` (`make browser-deps`, or `apt-get install -y
//! chromium`); `MDP_CHROMIUM` names another binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdp_core::messages::ScheduleEvent;
use mdp_tests::*;

const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// The Chromium binary, or a failure saying how to install it.
fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("MDP_CHROMIUM") {
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if let Some(path) = found.filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
    }
    panic!(
        "headless Chromium is needed for the report's browser test and is not installed: \
         run `make browser-deps` (or `apt-get install -y chromium`), or set MDP_CHROMIUM"
    );
}

/// Where test artifacts go: $CARGO_TARGET_DIR (relative to the workspace
/// root, where make and CI run cargo) or the workspace's target/.
fn artifacts_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("test-artifacts").join("report");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What one headless Chromium run printed.
struct Run {
    stdout: String,
    stderr: String,
}

impl Run {
    /// Console messages and uncaught exceptions. Chromium 156 logs every
    /// console message as `INFO:CONSOLE` whatever its level (console.error
    /// included), so any console line counts: the report's pages run no
    /// script, and a message can only be an error of the browser's (a
    /// blocked or failed load, a parse error).
    fn console_errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE") || l.contains("CONSOLE(") || l.contains("Uncaught"))
            .collect()
    }
}

/// Runs headless Chromium on `url` with `action` (`--dump-dom` or
/// `--screenshot=PATH`), console logging on, in a fresh profile.
fn run_chromium(url: &str, action: &str, profile: &Path) -> Run {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=1",
            "--window-size=1280,2000",
            &format!("--user-data-dir={}", profile.display()),
            action,
            url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting chromium: {e}"));
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            panic!("chromium did not finish {action} {url} in {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let run = Run {
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        status.success(),
        "chromium {action} {url} failed ({status}):\n{}",
        run.stderr
    );
    run
}

fn file_url(path: &Path) -> String {
    // The lake's folder names need no encoding but the ticker pages' `%`.
    format!("file://{}", path.display()).replace('%', "%25")
}

/// Dumps the DOM of `url`, asserting no console error; screenshots it too.
fn open_page(url: &str, profile: &Path, screenshot: Option<&Path>) -> String {
    let run = run_chromium(url, "--dump-dom", profile);
    let errors = run.console_errors();
    assert!(
        errors.is_empty(),
        "{url}: console errors:\n{}",
        errors.join("\n")
    );
    // Offline: nothing to load, nothing to run.
    for tag in ["<script", "<img", "<link", "<iframe", "@import"] {
        assert!(!run.stdout.contains(tag), "{url}: the page has {tag}");
    }
    if let Some(png) = screenshot {
        let shot = run_chromium(url, &format!("--screenshot={}", png.display()), profile);
        assert!(
            shot.console_errors().is_empty(),
            "{url}: console errors while taking the screenshot"
        );
        let bytes =
            std::fs::read(png).unwrap_or_else(|e| panic!("no screenshot {}: {e}", png.display()));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
            "{}: not a picture of a page",
            png.display()
        );
    }
    run.stdout
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_renders_in_headless_chromium_without_console_errors() {
    let chromium_profile = tempfile::tempdir().unwrap();
    let profile = chromium_profile.path();

    // The detector sees a console error when there is one.
    let probe_dir = tempfile::tempdir().unwrap();
    let probe = probe_dir.path().join("probe.html");
    std::fs::write(
        &probe,
        "<!DOCTYPE html><title>probe</title><script>console.error('probe error'); undefinedFunction();</script>",
    )
    .unwrap();
    let run = run_chromium(&file_url(&probe), "--dump-dom", profile);
    let caught = run.console_errors();
    assert!(
        caught.iter().any(|l| l.contains("probe error"))
            && caught.iter().any(|l| l.contains("Uncaught ReferenceError")),
        "the console error detector missed the probe's errors; it saw:\n{}\nstderr:\n{}",
        caught.join("\n"),
        run.stderr
    );

    // A lake from the real pipeline over the recorded responses; ^GSPC
    // (served the MSFT recording) has a file name that needs encoding.
    let server = recorded_server().await;
    // Its long name is hostile: it must show as text, never run.
    let mut gspc: serde_json::Value = serde_json::from_slice(&yahoo_fixture(MSFT)).unwrap();
    let meta = &mut gspc["chart"]["result"][0]["meta"];
    meta["symbol"] = "^GSPC".into();
    meta["longName"] = "S&P 500 <script>alert('x')</script>".into();
    server
        .add_series("^GSPC", &serde_json::to_vec(&gspc).unwrap())
        .unwrap();
    let scratch = Scratch::new(&server, Store::Sqlite);
    let pipeline = scratch.pipeline().await;
    let tickers = ["MSFT", "NVDA", "AAPL", "BTC-USD", "^GSPC"];
    let event = ScheduleEvent {
        tickers: Some(tickers.iter().map(|t| t.to_string()).collect()),
        date: None,
        start: Some(d("2020-01-01")),
        end: Some(d("2022-01-31")),
    };
    let summary = pipeline.run(&event, d("2022-01-31")).await.unwrap();
    assert!(summary.all_succeeded(), "{}", summary.render());
    pipeline.warehouse.close().await;

    let outcome = mdp_report::write_report(
        &pipeline.lake,
        None,
        pipeline.lake.store(),
        mdp_report::LAKE_REPORT_PREFIX,
        "2022-02-01T23:00:00Z".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.tickers, tickers.len());
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    let reports = scratch.lake_dir().join("reports");
    let artifacts = artifacts_dir();

    // The index.
    let index_url = file_url(&reports.join("index.html"));
    let index = open_page(&index_url, profile, Some(&artifacts.join("index.png")));
    assert!(
        index.contains("<table class=\"tickers\">"),
        "no ticker table:\n{index}"
    );
    assert_eq!(count(&index, "<tr data-ticker="), tickers.len());
    assert_eq!(
        count(&index, "class=\"chart chart-sparkline\""),
        tickers.len(),
        "a sparkline per ticker"
    );
    assert!(index.contains("Microsoft Corporation"));
    assert!(index.contains("NVIDIA Corporation"));

    // The link to ^GSPC's page, as the browser resolves it, opens the page.
    let href = index
        .split("<a href=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .find(|h| h.contains("GSPC"))
        .expect("a link to ^GSPC's page");
    assert_eq!(href, "tickers/%255EGSPC.html");
    let gspc_url = format!("{}{href}", index_url.trim_end_matches("index.html"));
    let gspc = open_page(&gspc_url, profile, None);
    assert!(
        gspc.contains("(^GSPC)"),
        "the link did not open ^GSPC's page:\n{gspc}"
    );
    assert!(gspc.contains("S&amp;P 500 &lt;script&gt;alert('x')&lt;/script&gt;"));

    // A ticker page: every chart, with its legend, and the names.
    let msft_url = file_url(&reports.join("tickers/MSFT.html"));
    let msft = open_page(&msft_url, profile, Some(&artifacts.join("MSFT.png")));
    assert!(msft.contains("Microsoft Corporation"));
    for class in ["chart-price", "chart-volume", "chart-rsi", "chart-macd"] {
        assert_eq!(
            count(&msft, &format!("class=\"chart {class}\"")),
            1,
            "MSFT page: {class}"
        );
    }
    for text in [
        "SMA 20",
        "Bollinger bands",
        "70: overbought",
        "Signal (EMA 9 of MACD)",
        "Shares traded",
    ] {
        assert!(msft.contains(text), "MSFT page lacks {text:?}");
    }
    assert!(msft.contains("href=\"../index.html\""));
    // Corporate actions from the recordings: MSFT's dividends, NVDA's 4:1 split.
    assert!(
        msft.contains("Dividend (ex-date, amount per share)"),
        "no dividend marker on MSFT's chart"
    );
    assert!(msft.contains("<td>dividend</td>"));
    let nvda = open_page(
        &file_url(&reports.join("tickers/NVDA.html")),
        profile,
        Some(&artifacts.join("NVDA.png")),
    );
    assert!(
        nvda.contains("split 4:1"),
        "no split marker on NVDA's chart"
    );
    assert!(nvda.contains("Split (ratio)"));
    let btc = open_page(
        &file_url(&reports.join("tickers/BTC-USD.html")),
        profile,
        Some(&artifacts.join("BTC-USD.png")),
    );
    assert!(btc.contains("class=\"chart chart-price\""));
    eprintln!("screenshots in {}", artifacts.display());
}
