//! The pages and charts from hand-made data: escaping, what each chart must
//! label, markers, tables, empty and gappy data, file names and links.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use mdp_core::quality::{
    ActionKind, CorporateAction, HardRule, QualityFinding, QuarantinedBar, SoftRule,
};
use mdp_core::row::DailyBar;
use mdp_core::{CuratedRow, Indicators, InstrumentMeta, Lake, LocalStore, ObjectStore, Ticker};

use crate::*;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn t(s: &str) -> Ticker {
    Ticker::parse(s).unwrap()
}

/// Wednesday 2025-06-04, 23:00 UTC: after that day's close and grace.
fn now() -> DateTime<Utc> {
    "2025-06-04T23:00:00Z".parse().unwrap()
}

/// `n` sessions ending 2025-06-04 (weekdays), a gentle zig-zag with every
/// indicator present once its window is full.
fn rows(ticker: &str, n: usize) -> Vec<CuratedRow> {
    let mut dates = Vec::new();
    let mut day = d("2025-06-04");
    while dates.len() < n {
        if mdp_core::calendar::is_session(day) {
            dates.push(day);
        }
        day -= TimeDelta::days(1);
    }
    dates.reverse();
    dates
        .into_iter()
        .enumerate()
        .map(|(i, date)| {
            let close = 100.0 + (i as f64 * 0.7).sin() * 5.0 + i as f64 * 0.1;
            let some = |from: usize, v: f64| (i >= from).then_some(v);
            CuratedRow {
                ticker: ticker.to_string(),
                bar: DailyBar {
                    date,
                    open: Some(close - 0.5),
                    high: Some(close + 1.0),
                    low: Some(close - 1.5),
                    close,
                    adj_close: Some(close),
                    volume: Some(1_000_000 + i as i64 * 1000),
                },
                indicators: Indicators {
                    sma_7: some(6, close - 0.2),
                    sma_20: some(19, close - 0.4),
                    bb_upper: some(19, close + 3.0),
                    bb_middle: some(19, close - 0.4),
                    bb_lower: some(19, close - 3.5),
                    rsi: some(14, 40.0 + (i % 30) as f64),
                    macd: Some((i as f64 * 0.3).sin()),
                    macd_signal: Some((i as f64 * 0.3).cos() * 0.5),
                    macd_histogram: Some((i as f64 * 0.3).sin() - (i as f64 * 0.3).cos() * 0.5),
                    ..Indicators::default()
                },
                meta: InstrumentMeta {
                    currency: Some("USD".into()),
                    exchange: Some("NMS".into()),
                    instrument_type: Some("EQUITY".into()),
                    long_name: Some(format!("{ticker} Corporation")),
                    ..InstrumentMeta::default()
                },
                created_at: now(),
                updated_at: now(),
            }
        })
        .collect()
}

fn data(ticker: &str, n: usize) -> TickerData {
    let mut data = TickerData::empty(t(ticker));
    data.rows = rows(ticker, n);
    data
}

fn dividend(date: &str, amount: f64) -> CorporateAction {
    CorporateAction {
        date: d(date),
        kind: ActionKind::Dividend,
        amount: Some(amount),
        numerator: None,
        denominator: None,
    }
}

fn split(date: &str, n: f64, den: f64) -> CorporateAction {
    CorporateAction {
        date: d(date),
        kind: ActionKind::Split,
        amount: None,
        numerator: Some(n),
        denominator: Some(den),
    }
}

fn quarantined(date: &str, detail: &str) -> QuarantinedBar {
    QuarantinedBar {
        bar: DailyBar {
            date: d(date),
            open: Some(10.0),
            high: Some(9.0),
            low: Some(8.0),
            close: 9.5,
            adj_close: None,
            volume: Some(100),
        },
        rules: vec![HardRule::HighBelowOpenOrClose],
        detail: detail.to_string(),
        raw_key: "raw/yahoo/chart/ticker=MSFT/2025-01-02_2025-06-04.json".into(),
        quarantined_at: now(),
    }
}

/// Every `<svg …>` of a page.
fn svgs(html: &str) -> Vec<&str> {
    html.match_indices("<svg ")
        .map(|(i, _)| {
            let end = html[i..].find("</svg>").expect("closed svg") + i;
            &html[i..end]
        })
        .collect()
}

/// An SVG `<text>` element's content as plotters writes it (not an
/// attribute such as the aria-label).
fn label(text: &str) -> String {
    format!(">\n{text}\n</text>")
}

/// A chart's SVG by its class (`chart-price`, …).
fn chart<'a>(html: &'a str, class: &str) -> &'a str {
    svgs(html)
        .into_iter()
        .find(|s| s.contains(&format!("chart-{class}\"")))
        .unwrap_or_else(|| panic!("no {class} chart"))
}

#[test]
fn hostile_text_is_escaped_everywhere() {
    let hostile = "<script>alert('x')</script> & \"quotes\"";
    let mut data = data("BRK-B", 60);
    for row in &mut data.rows {
        row.meta.long_name = Some(hostile.into());
        row.meta.exchange = Some("<img src=x onerror=alert(1)>".into());
    }
    data.findings.push(QualityFinding {
        date: d("2025-06-02"),
        rule: SoftRule::LargeMove,
        detail: hostile.into(),
    });
    let mut bar = quarantined("2025-06-03", hostile);
    bar.raw_key = "raw/<b>key</b>".into();
    data.quarantine.push(bar);
    data.read_errors.push(format!("the watermark: {hostile}"));
    let report = render_report(&[data], now());
    for html in std::iter::once(&report.index).chain(report.pages.iter().map(|(_, h)| h)) {
        assert!(!html.contains("<script"), "unescaped script tag");
        assert!(!html.contains("<img"), "unescaped img tag");
        assert!(!html.contains("<b>"), "unescaped b tag");
    }
    let page = &report.pages[0].1;
    assert!(page.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; \"quotes\""));
    // In the SVG texts (chart captions) and attributes too.
    assert!(chart(page, "price").contains("&lt;script&gt;"));
    assert!(report.index.contains("&lt;script&gt;"));
}

#[test]
fn every_chart_has_a_caption_axis_descriptions_and_a_legend() {
    let page = render_ticker_page(&data("MSFT", 120), now());
    let price = chart(&page, "price");
    for text in [
        "MSFT Corporation (MSFT)",
        "Price (USD)",
        "Date (trading sessions)",
        "Daily candles (open, high, low, close)",
        "SMA 7",
        "SMA 20",
        "Bollinger bands (20, 2σ)",
    ] {
        assert!(price.contains(&label(text)), "price chart lacks {text:?}");
    }
    let volume = chart(&page, "volume");
    assert!(volume.contains(&label("Shares traded")));
    assert!(volume.contains(&label("Date (trading sessions)")));
    let rsi = chart(&page, "rsi");
    for text in [
        "RSI 14",
        "70: overbought",
        "30: oversold",
        "Date (trading sessions)",
    ] {
        assert!(rsi.contains(&label(text)), "RSI chart lacks {text:?}");
    }
    let macd = chart(&page, "macd");
    for text in [
        "MACD",
        "Signal (EMA 9 of MACD)",
        "Histogram (MACD − signal)",
        "Date (trading sessions)",
    ] {
        assert!(macd.contains(&label(text)), "MACD chart lacks {text:?}");
    }
    // Dated x labels: the first and last charted sessions' years.
    assert!(price.contains("2025-"), "no dates on the x axis");
    // Each chart is inline, sized by CSS, labelled for screen readers.
    for svg in svgs(&page) {
        assert!(svg.contains("role=\"img\" aria-label=\""));
        assert!(svg.contains("viewBox=\"0 0 "));
    }
}

#[test]
fn dividends_and_splits_are_marked_with_legend_entries() {
    let mut with = data("AAPL", 120);
    with.actions = vec![dividend("2025-05-12", 0.26), split("2025-04-01", 4.0, 1.0)];
    let page = render_ticker_page(&with, now());
    let price = chart(&page, "price");
    assert!(price.contains(&label("Dividend (ex-date, amount per share)")));
    assert!(price.contains(&label("Split (ratio)")));
    assert!(price.contains(&label("split 4:1")));
    assert!(price.contains(&label("0.26")));
    // The corporate actions table lists both.
    assert!(page.contains("<td>2025-05-12</td><td>dividend</td><td>0.26 per share</td>"));
    assert!(page.contains("<td>2025-04-01</td><td>split</td><td>4:1 split</td>"));

    // No action, no marker nor legend entry; an action outside the charted
    // window neither (it is still in the table).
    let without = render_ticker_page(&data("AAPL", 120), now());
    assert!(!chart(&without, "price").contains("Dividend"));
    let mut old = data("AAPL", 120);
    old.actions = vec![dividend("2001-01-02", 0.1)];
    let page = render_ticker_page(&old, now());
    assert!(!chart(&page, "price").contains("Dividend"));
    assert!(page.contains("<td>2001-01-02</td><td>dividend</td>"));
}

#[test]
fn findings_and_quarantined_bars_are_listed_and_flagged() {
    let mut data = data("MSFT", 40);
    data.findings = vec![
        QualityFinding {
            date: d("2025-05-20"),
            rule: SoftRule::StalePrice,
            detail: "same OHLCV as 2025-05-19".into(),
        },
        QualityFinding {
            date: d("2025-05-28"),
            rule: SoftRule::MissingSession,
            detail: "no bar for the session of 2025-05-27".into(),
        },
    ];
    data.quarantine = vec![quarantined("2025-05-30", "high 9 < open 10")];
    let page = render_ticker_page(&data, now());
    assert!(page.contains("Quality findings (soft rules: the bar is kept) — 2"));
    assert!(page.contains("<code>stale_price</code>"));
    assert!(page.contains("no bar for the session of 2025-05-27"));
    // Newest first.
    assert!(page.find("missing_session").unwrap() < page.find("stale_price").unwrap());
    assert!(page.contains("Quarantined bars (hard rules: kept out of the curated data) — 1"));
    assert!(page.contains("<code>high_below_open_or_close</code>"));
    assert!(page.contains("high 9 &lt; open 10"));
    assert!(page.contains("raw/yahoo/chart/ticker=MSFT/2025-01-02_2025-06-04.json"));

    let index = render_index(&[index_entry(&data, now())], now());
    assert!(index.contains("⚠ 1 quarantined, 2 findings"));
    let clean = render_index(
        &[index_entry(&super::tests::data("MSFT", 40), now())],
        now(),
    );
    assert!(clean.contains("✓ OK"));
    assert!(!clean.contains("quarantined,"));
}

#[test]
fn an_empty_history_gives_a_clear_page_and_index_row() {
    let empty = TickerData::empty(t("^GSPC"));
    let report = render_report(std::slice::from_ref(&empty), now());
    let (key, page) = &report.pages[0];
    assert_eq!(key, "tickers/%5EGSPC.html");
    assert!(page.contains("No curated data for ^GSPC in the lake yet"));
    assert!(svgs(page).is_empty(), "no chart without data");
    assert!(page.contains("Corporate actions") && page.contains("None reported."));
    assert!(report.index.contains("no data"));
    assert!(report.index.contains("href=\"tickers/%255EGSPC.html\""));
    // And a lake with no ticker at all.
    let none = render_index(&[], now());
    assert!(none.contains("holds no curated data yet"));
    // One row: no change, no sparkline, but a page with charts.
    let one = data("MSFT", 1);
    let entry = index_entry(&one, now());
    assert_eq!(entry.last.unwrap().change, None);
    assert!(entry.sparkline.is_none());
    let page = render_ticker_page(&one, now());
    assert!(!page.contains("NaN"));
    chart(&page, "price");
}

#[test]
fn missing_and_non_finite_values_never_reach_svg_coordinates() {
    let mut data = data("BTC-USD", 80);
    for (i, row) in data.rows.iter_mut().enumerate() {
        match i % 5 {
            0 => {
                row.indicators.sma_7 = Some(f64::NAN);
                row.indicators.bb_upper = Some(f64::INFINITY);
                row.indicators.macd_histogram = Some(f64::NAN);
            }
            1 => {
                row.indicators = Indicators::default();
                row.bar.open = None;
                row.bar.high = None;
                row.bar.low = Some(f64::NAN);
                row.bar.volume = None;
            }
            2 => row.indicators.rsi = Some(f64::NEG_INFINITY),
            _ => {}
        }
    }
    let report = render_report(&[data], now());
    for html in std::iter::once(&report.index).chain(report.pages.iter().map(|(_, h)| h)) {
        for bad in ["NaN", "inf"] {
            assert!(!html.contains(bad), "{bad} in the output");
        }
    }
    // Every indicator missing: the charts are still drawn, with no line.
    let mut bare = super::tests::data("MSFT", 30);
    for row in &mut bare.rows {
        row.indicators = Indicators::default();
    }
    let page = render_ticker_page(&bare, now());
    assert!(!page.contains("NaN"));
    assert!(!chart(&page, "price").contains(&label("SMA 7")));
    assert!(chart(&page, "price").contains(&label("Daily candles (open, high, low, close)")));
}

#[test]
fn page_names_use_the_lake_encoding_and_links_encode_it_again() {
    for (ticker, key, href) in [
        ("^GSPC", "tickers/%5EGSPC.html", "tickers/%255EGSPC.html"),
        (
            "EURUSD=X",
            "tickers/EURUSD%3DX.html",
            "tickers/EURUSD%253DX.html",
        ),
        ("BRK-B", "tickers/BRK-B.html", "tickers/BRK-B.html"),
        ("BF.B", "tickers/BF.B.html", "tickers/BF.B.html"),
    ] {
        assert_eq!(page_key(&t(ticker)), key);
        assert_eq!(page_href(&t(ticker)), href);
        // What the browser asks for is the file's name.
        assert_eq!(
            mdp_core::encoding::percent_decode(href),
            key,
            "{ticker}: the link decodes to the file name"
        );
    }
}

#[test]
fn long_histories_are_charted_over_the_last_year_with_an_overview() {
    let long = data("MSFT", 1300);
    let window = chart_window(&long.rows);
    let last = long.rows.last().unwrap().bar.date;
    assert!(
        window.len() >= 250 && window.len() <= 254,
        "{}",
        window.len()
    );
    assert!(window[0].bar.date > last - TimeDelta::days(WINDOW_DAYS));
    let page = render_ticker_page(&long, now());
    assert!(page.contains("whole history (close)"));
    assert!(page.contains("the charts below show the last year"));
    // A short history is charted whole, without the overview.
    let short = data("MSFT", 200);
    assert_eq!(chart_window(&short.rows).len(), 200);
    let page = render_ticker_page(&short, now());
    assert!(svgs(&page).iter().all(|s| !s.contains("chart-history")));
}

#[test]
fn index_shows_close_change_freshness_and_links() {
    let mut stale = data("MSFT", 30);
    stale.rows.truncate(27); // three sessions short of 2025-06-04
    let fresh = data("EURUSD=X", 30);
    let entries = [index_entry(&fresh, now()), index_entry(&stale, now())];
    assert!(entries[0].freshness.is_fresh());
    assert_eq!(entries[1].freshness.lag, Some(3));
    let index = render_index(&entries, now());
    assert!(index.contains("✓ up to date"));
    assert!(index.contains("⚠ 3 sessions behind"));
    assert!(index.contains("href=\"tickers/EURUSD%253DX.html\">EURUSD=X</a>"));
    let last = entries[0].last.unwrap();
    let rows = &fresh.rows;
    let expected = rows[29].bar.close - rows[28].bar.close;
    assert!((last.change.unwrap() - expected).abs() < 1e-12);
    assert!(index.contains(&format!("{:.2}", rows[29].bar.close)));
    // A sparkline per ticker with history.
    assert_eq!(svgs(&index).len(), 2);
    assert!(svgs(&index).iter().all(|s| s.contains("chart-sparkline")));
    // Offline: nothing is fetched from elsewhere.
    for html in [&index, &render_ticker_page(&fresh, now())] {
        for external in ["<script", "<link", "http://", "https://", "@import", "url("] {
            let allowed = external == "http://"
                && html.matches(external).count()
                    == html.matches("http://www.w3.org/2000/svg").count();
            assert!(allowed || !html.contains(external), "{external} in a page");
        }
    }
}

#[tokio::test]
async fn write_report_writes_the_index_and_a_page_per_ticker() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path().join("lake"))));
    let msft = rows("MSFT", 30);
    let bytes =
        mdp_lake::encode_parquet(&msft, mdp_core::config::ParquetCompression::Snappy).unwrap();
    lake.store()
        .put(&Lake::curated_key(&t("MSFT"), 2025), bytes)
        .await
        .unwrap();
    // The side files the transform writes: actions, findings, quarantine.
    let snappy = mdp_core::config::ParquetCompression::Snappy;
    let msft_t = t("MSFT");
    let side = [
        (
            Lake::corporate_actions_key(&msft_t),
            mdp_lake::encode_corporate_actions(&[dividend("2025-05-21", 0.83)], snappy).unwrap(),
        ),
        (
            Lake::quality_findings_key(&msft_t),
            mdp_lake::encode_quality_findings(
                &[QualityFinding {
                    date: d("2025-05-22"),
                    rule: SoftRule::LargeMove,
                    detail: "close moved 12%".into(),
                }],
                snappy,
            )
            .unwrap(),
        ),
        (
            Lake::quarantine_key(&msft_t),
            mdp_lake::encode_quarantine(&[quarantined("2025-05-23", "high 9 < open 10")], snappy)
                .unwrap(),
        ),
    ];
    for (key, bytes) in side {
        lake.store().put(&key, bytes).await.unwrap();
    }
    // Every ticker of the lake, under the lake's reports/ prefix.
    let outcome = write_report(&lake, None, lake.store(), LAKE_REPORT_PREFIX, now())
        .await
        .unwrap();
    assert_eq!(outcome.tickers, 1);
    assert_eq!(outcome.index_key, "reports/index.html");
    assert!(
        outcome.index_uri.ends_with("/lake/reports/index.html"),
        "{}",
        outcome.index_uri
    );
    let page = std::fs::read_to_string(dir.path().join("lake/reports/tickers/MSFT.html")).unwrap();
    assert!(page.contains("MSFT Corporation"));
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert!(page.contains("<td>2025-05-21</td><td>dividend</td><td>0.83 per share</td>"));
    assert!(chart(&page, "price").contains(&label("Dividend (ex-date, amount per share)")));
    assert!(page.contains("close moved 12%"));
    assert!(page.contains("<code>high_below_open_or_close</code>"));
    let index = std::fs::read_to_string(dir.path().join("lake/reports/index.html")).unwrap();
    assert!(index.contains("⚠ 1 quarantined, 1 finding"));

    // Chosen tickers into another store: one without data still gets a page.
    let out = LocalStore::new(dir.path().join("out"));
    let outcome = write_report(&lake, Some(vec![t("MSFT"), t("^GSPC")]), &out, "", now())
        .await
        .unwrap();
    assert_eq!(outcome.tickers, 2);
    assert_eq!(outcome.index_key, "index.html");
    assert!(dir.path().join("out/tickers/%5EGSPC.html").is_file());
    let index = std::fs::read_to_string(dir.path().join("out/index.html")).unwrap();
    assert!(index.contains("href=\"tickers/%255EGSPC.html\""));
    assert!(out.list("").await.unwrap().len() == 3);

    // An unreadable partition: a page that says so, and a problem reported.
    lake.store()
        .put(
            &Lake::curated_key(&t("NVDA"), 2025),
            b"not parquet".to_vec(),
        )
        .await
        .unwrap();
    let outcome = write_report(&lake, Some(vec![t("NVDA")]), &out, "", now())
        .await
        .unwrap();
    assert_eq!(outcome.problems.len(), 1, "{:?}", outcome.problems);
    assert!(outcome.problems[0].starts_with("NVDA: the curated history"));
    let page = std::fs::read_to_string(dir.path().join("out/tickers/NVDA.html")).unwrap();
    assert!(page.contains("Could not read the curated history"));
}
