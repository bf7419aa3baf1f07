//! The pages: the index of every ticker and one page per ticker, as HTML
//! strings with inline CSS and inline SVG charts (no script, no external
//! resource: the files open from a folder, offline). Every text taken from
//! data is HTML-escaped here.

use std::borrow::Cow;
use std::fmt::Write;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use mdp_core::CuratedRow;
use mdp_core::quality::ActionKind;

use crate::charts::{self, ChartError, action_label, format_count, format_price};
use crate::summary::{Freshness, LastClose, QualityStatus, TickerData, freshness, last_close};

/// A history spanning more than this is charted in detail over its last
/// [`WINDOW_DAYS`] only (a year of daily candles is about 2 px each at
/// 1200 px); the whole history is then shown as a close line above.
pub const WHOLE_HISTORY_MAX_DAYS: i64 = 456;
pub const WINDOW_DAYS: i64 = 365;
/// The index's sparklines cover the last quarter.
pub const SPARKLINE_DAYS: i64 = 92;
/// Findings and quarantined bars listed on a page at most (newest first).
pub const TABLE_ROWS_MAX: usize = 500;

fn esc(s: &str) -> Cow<'_, str> {
    html_escape::encode_text(s)
}

fn attr(s: &str) -> Cow<'_, str> {
    html_escape::encode_double_quoted_attribute(s)
}

/// Where a ticker's page lives under the report's prefix: its lake
/// partition value (`^GSPC` → `tickers/%5EGSPC.html`).
pub fn page_key(ticker: &mdp_core::Ticker) -> String {
    format!("tickers/{}.html", ticker.partition_value())
}

/// The link to a ticker's page from the index: the file name's `%` must
/// itself be percent-encoded in a URL, or the browser would decode
/// `%5E` and look for `^GSPC.html`.
pub fn page_href(ticker: &mdp_core::Ticker) -> String {
    format!(
        "tickers/{}.html",
        mdp_core::encoding::percent_encode(&ticker.partition_value(), b"._-")
    )
}

/// The rows charted in detail: all of a short history, else the last year.
pub fn chart_window(rows: &[CuratedRow]) -> &[CuratedRow] {
    rows_since(rows, WHOLE_HISTORY_MAX_DAYS, WINDOW_DAYS)
}

fn rows_since(rows: &[CuratedRow], whole_max: i64, window: i64) -> &[CuratedRow] {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return rows;
    };
    if last.bar.date - first.bar.date <= TimeDelta::days(whole_max) {
        return rows;
    }
    let from = last.bar.date - TimeDelta::days(window);
    &rows[rows.partition_point(|r| r.bar.date <= from)..]
}

const CSS: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  margin: 0 auto; padding: 16px 24px 40px; max-width: 1240px; color: #1d1d1f; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6rem; margin: 0.4rem 0; }
h1 .ticker { color: #555; font-weight: normal; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
a { color: #1e64c8; }
.meta, .note, footer { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 5px 8px; text-align: left; vertical-align: middle; }
th { background: #f5f6f8; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.up { color: #1b7f72; } .down { color: #c62828; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.85rem; white-space: nowrap; }
.status.ok { background: #e3f4ea; color: #1b5e20; }
.status.warn { background: #fff3d6; color: #7a4f00; }
.status.bad { background: #fde2e1; color: #8e1c1c; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 12px 0; padding: 0; }
.facts div { min-width: 120px; }
.facts dt { font-size: 0.8rem; color: #666; }
.facts dd { margin: 0; font-size: 1.05rem; font-weight: 600; }
svg.chart { display: block; width: 100%; height: auto; margin: 10px 0; }
svg.chart-sparkline { width: 150px; margin: 0; }
.error { background: #fde2e1; border: 1px solid #e8a6a4; padding: 8px 12px; border-radius: 6px; }
.empty { background: #f5f6f8; padding: 16px; border-radius: 6px; }
code { background: #f2f2f2; padding: 1px 4px; border-radius: 3px; }
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

fn generated(now: DateTime<Utc>) -> String {
    format!(
        "<footer><p>Generated {} UTC by <code>mdp report</code> from the curated lake. \
         Freshness is judged against the NYSE calendar (every day for crypto).</p></footer>\n",
        now.format("%Y-%m-%d %H:%M")
    )
}

fn signed(v: f64, decimals: usize) -> String {
    format!("{}{v:.decimals$}", if v > 0.0 { "+" } else { "" })
}

fn change_class(v: Option<f64>) -> &'static str {
    match v {
        Some(v) if v > 0.0 => "up",
        Some(v) if v < 0.0 => "down",
        _ => "",
    }
}

fn freshness_badge(f: &Freshness) -> String {
    let class = match f.lag {
        Some(0) => "ok",
        Some(_) => "warn",
        None => "bad",
    };
    let title = format!("expected {}", f.expected);
    format!(
        "<span class=\"status {class} freshness\" title=\"{}\">{}{}</span>",
        attr(&title),
        if f.is_fresh() { "✓ " } else { "⚠ " },
        esc(&f.describe())
    )
}

fn quality_badge(q: &QualityStatus) -> String {
    if q.is_ok() {
        return "<span class=\"status ok quality\">✓ OK</span>".to_string();
    }
    let mut parts = Vec::new();
    if q.quarantined > 0 {
        parts.push(format!("{} quarantined", q.quarantined));
    }
    if q.findings > 0 {
        parts.push(format!(
            "{} finding{}",
            q.findings,
            if q.findings == 1 { "" } else { "s" }
        ));
    }
    if q.unreadable > 0 {
        parts.push(format!("{} unreadable", q.unreadable));
    }
    let class = if q.quarantined > 0 || q.unreadable > 0 {
        "bad"
    } else {
        "warn"
    };
    format!(
        "<span class=\"status {class} quality\">⚠ {}</span>",
        parts.join(", ")
    )
}

/// What the index shows of one ticker (kept instead of its rows, so a
/// report of many tickers holds one history at a time).
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub ticker: mdp_core::Ticker,
    pub name: Option<String>,
    pub last: Option<LastClose>,
    pub freshness: Freshness,
    pub quality: QualityStatus,
    /// An inline SVG, or `None` with fewer than two closes.
    pub sparkline: Option<String>,
}

pub fn index_entry(data: &TickerData, now: DateTime<Utc>) -> IndexEntry {
    let recent = rows_since(&data.rows, SPARKLINE_DAYS, SPARKLINE_DAYS);
    let closes: Vec<f64> = recent.iter().map(|r| r.bar.close).collect();
    let label = format!("{}: close over the last 3 months", data.ticker);
    let sparkline = charts::sparkline(&label, &closes).unwrap_or_else(|e| {
        tracing::warn!(ticker = %data.ticker, "{e}");
        None
    });
    IndexEntry {
        ticker: data.ticker.clone(),
        name: data.name().map(str::to_string),
        last: last_close(&data.rows),
        freshness: freshness(data, now),
        quality: QualityStatus::of(data),
        sparkline,
    }
}

pub fn render_index(entries: &[IndexEntry], now: DateTime<Utc>) -> String {
    let mut body = String::new();
    body.push_str("<header><h1>Market data report</h1>\n");
    let stale = entries.iter().filter(|e| !e.freshness.is_fresh()).count();
    let flagged = entries.iter().filter(|e| !e.quality.is_ok()).count();
    let _ = writeln!(
        body,
        "<p class=\"meta\">{} ticker{} · {stale} not up to date · {flagged} with quality warnings</p></header>",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
    );
    if entries.is_empty() {
        body.push_str(
            "<p class=\"empty\">The lake holds no curated data yet: run <code>mdp run</code> \
             (or <code>make demo</code>) first.</p>\n",
        );
    } else {
        body.push_str(
            "<table class=\"tickers\">\n<thead><tr><th>Ticker</th><th>Name</th><th>Last date</th>\
             <th class=\"num\">Last close</th><th class=\"num\">Change</th><th class=\"num\">Change %</th>\
             <th>Last 3 months</th><th>Freshness</th><th>Quality</th></tr></thead>\n<tbody>\n",
        );
        for e in entries {
            let (date, close, change, pct) = match &e.last {
                Some(l) => (
                    l.date.to_string(),
                    format_price(l.close),
                    l.change.map_or("–".into(), |c| signed(c, 2)),
                    l.change_pct
                        .map_or("–".into(), |p| format!("{}%", signed(p, 2))),
                ),
                None => ("–".into(), "–".into(), "–".into(), "–".into()),
            };
            let class = change_class(e.last.and_then(|l| l.change));
            let _ = writeln!(
                body,
                "<tr data-ticker=\"{}\"><td><a href=\"{}\">{}</a></td><td>{}</td><td>{date}</td>\
                 <td class=\"num\">{close}</td><td class=\"num {class}\">{change}</td>\
                 <td class=\"num {class}\">{pct}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                attr(e.ticker.as_str()),
                attr(&page_href(&e.ticker)),
                esc(e.ticker.as_str()),
                esc(e.name.as_deref().unwrap_or("")),
                e.sparkline.as_deref().unwrap_or("–"),
                freshness_badge(&e.freshness),
                quality_badge(&e.quality),
            );
        }
        body.push_str("</tbody></table>\n");
    }
    body.push_str(&generated(now));
    page("Market data report", &body)
}

fn chart_or_error(chart: Result<String, ChartError>) -> String {
    chart.unwrap_or_else(|e| format!("<p class=\"error\">{}</p>\n", esc(&e.to_string())))
}

fn fact(body: &mut String, label: &str, value: &str) {
    let _ = write!(body, "<div><dt>{}</dt><dd>{value}</dd></div>", esc(label));
}

fn opt_price(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite()).map_or("–".into(), format_price)
}

/// One ticker's page.
pub fn render_ticker_page(data: &TickerData, now: DateTime<Utc>) -> String {
    let t = data.ticker.as_str();
    let title = match data.name() {
        Some(name) => format!("{name} ({t})"),
        None => t.to_string(),
    };
    let mut body = String::new();
    body.push_str("<nav><a href=\"../index.html\">← All tickers</a></nav>\n");
    let _ = writeln!(
        body,
        "<h1>{} <span class=\"ticker\">({})</span></h1>",
        esc(data.name().unwrap_or(t)),
        esc(t)
    );
    if let Some(meta) = data.rows.last().map(|r| &r.meta) {
        let parts: Vec<&str> = [&meta.exchange, &meta.instrument_type, &meta.currency]
            .into_iter()
            .filter_map(|v| v.as_deref())
            .collect();
        let _ = writeln!(body, "<p class=\"meta\">{}</p>", esc(&parts.join(" · ")));
    }
    for e in &data.read_errors {
        let _ = writeln!(body, "<p class=\"error\">Could not read {}</p>", esc(e));
    }

    let fresh = freshness(data, now);
    let quality = QualityStatus::of(data);
    body.push_str("<dl class=\"facts\">");
    if let Some(l) = last_close(&data.rows) {
        fact(&mut body, "Last close", &esc(&format_price(l.close)));
        let class = change_class(l.change);
        let change = match (l.change, l.change_pct) {
            (Some(c), Some(p)) => format!("{} ({}%)", signed(c, 2), signed(p, 2)),
            (Some(c), None) => signed(c, 2),
            _ => "–".into(),
        };
        fact(
            &mut body,
            "Change",
            &format!("<span class=\"{class}\">{}</span>", esc(&change)),
        );
        fact(&mut body, "Last date", &l.date.to_string());
    }
    fact(&mut body, "Freshness", &freshness_badge(&fresh));
    fact(&mut body, "Quality", &quality_badge(&quality));
    fact(&mut body, "Rows", &data.rows.len().to_string());
    if let Some(meta) = data
        .rows
        .last()
        .map(|r| &r.meta)
        .filter(|m| m.fifty_two_week_low.is_some() || m.fifty_two_week_high.is_some())
    {
        let range = format!(
            "{} – {}",
            opt_price(meta.fifty_two_week_low),
            opt_price(meta.fifty_two_week_high)
        );
        fact(&mut body, "52-week range", &esc(&range));
    }
    body.push_str("</dl>\n");

    if data.rows.is_empty() {
        let _ = writeln!(
            body,
            "<p class=\"empty\">No curated data for {} in the lake yet: \
             <code>mdp run --tickers {}</code> fetches it.</p>",
            esc(t),
            esc(t)
        );
    } else {
        charts_section(&mut body, data, &title);
    }
    tables_section(&mut body, data);
    body.push_str(&generated(now));
    page(&format!("{title} · market data report"), &body)
}

fn charts_section(body: &mut String, data: &TickerData, title: &str) {
    let window = chart_window(&data.rows);
    let first: NaiveDate = window[0].bar.date;
    let last: NaiveDate = window[window.len() - 1].bar.date;
    if window.len() < data.rows.len() {
        let _ = writeln!(
            body,
            "<p class=\"note\">The history has {} sessions from {}; the charts below show the last year \
             in detail ({} sessions, {first} to {last}).</p>",
            data.rows.len(),
            data.rows[0].bar.date,
            window.len()
        );
        body.push_str(&chart_or_error(charts::history_chart(
            title,
            data.currency(),
            &data.rows,
            data.rows.len() - window.len(),
        )));
    } else {
        let _ = writeln!(
            body,
            "<p class=\"note\">The whole history: {} sessions, {first} to {last}.</p>",
            window.len()
        );
    }
    body.push_str(&chart_or_error(charts::price_chart(
        title,
        data.currency(),
        window,
        &data.actions,
    )));
    body.push_str(&chart_or_error(charts::volume_chart(title, window)));
    body.push_str(&chart_or_error(charts::rsi_chart(title, window)));
    body.push_str(&chart_or_error(charts::macd_chart(title, window)));
}

fn capped_note(body: &mut String, total: usize) {
    if total > TABLE_ROWS_MAX {
        let _ = writeln!(
            body,
            "<p class=\"note\">The newest {TABLE_ROWS_MAX} of {total} are listed.</p>"
        );
    }
}

fn tables_section(body: &mut String, data: &TickerData) {
    body.push_str("<h2 id=\"corporate-actions\">Corporate actions</h2>\n");
    if data.actions.is_empty() {
        body.push_str("<p>None reported.</p>\n");
    } else {
        body.push_str(
            "<table class=\"actions\"><thead><tr><th>Date</th><th>Action</th><th>Detail</th></tr></thead><tbody>\n",
        );
        let mut actions: Vec<_> = data.actions.iter().collect();
        actions.sort_by_key(|a| std::cmp::Reverse(a.date));
        for a in actions {
            let detail = match a.kind {
                ActionKind::Dividend => format!("{} per share", action_label(a)),
                ActionKind::Split => format!("{} split", action_label(a)),
            };
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                a.date,
                esc(a.kind.code()),
                esc(&detail)
            );
        }
        body.push_str("</tbody></table>\n");
    }

    let _ = writeln!(
        body,
        "<h2 id=\"findings\">Quality findings (soft rules: the bar is kept) — {}</h2>",
        data.findings.len()
    );
    if data.findings.is_empty() {
        body.push_str("<p>None.</p>\n");
    } else {
        capped_note(body, data.findings.len());
        body.push_str(
            "<table class=\"findings\"><thead><tr><th>Date</th><th>Rule</th><th>Detail</th></tr></thead><tbody>\n",
        );
        let mut findings: Vec<_> = data.findings.iter().collect();
        findings.sort_by_key(|f| std::cmp::Reverse(f.date));
        for f in findings.into_iter().take(TABLE_ROWS_MAX) {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                f.date,
                esc(f.rule.code()),
                esc(&f.detail)
            );
        }
        body.push_str("</tbody></table>\n");
    }

    let _ = writeln!(
        body,
        "<h2 id=\"quarantine\">Quarantined bars (hard rules: kept out of the curated data) — {}</h2>",
        data.quarantine.len()
    );
    if data.quarantine.is_empty() {
        body.push_str("<p>None.</p>\n");
    } else {
        capped_note(body, data.quarantine.len());
        body.push_str(
            "<table class=\"quarantine\"><thead><tr><th>Date</th><th>Rules</th><th>Detail</th>\
             <th class=\"num\">Open</th><th class=\"num\">High</th><th class=\"num\">Low</th>\
             <th class=\"num\">Close</th><th class=\"num\">Volume</th><th>Raw response</th>\
             <th>Quarantined at</th></tr></thead><tbody>\n",
        );
        let mut bars: Vec<_> = data.quarantine.iter().collect();
        bars.sort_by_key(|q| std::cmp::Reverse(q.bar.date));
        for q in bars.into_iter().take(TABLE_ROWS_MAX) {
            let rules: Vec<&str> = q.rules.iter().map(|r| r.code()).collect();
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td><code>{}</code></td><td>{}</td></tr>",
                q.bar.date,
                esc(&rules.join(", ")),
                esc(&q.detail),
                esc(&opt_price(q.bar.open)),
                esc(&opt_price(q.bar.high)),
                esc(&opt_price(q.bar.low)),
                esc(&opt_price(Some(q.bar.close))),
                q.bar.volume.map_or("–".into(), |v| format_count(v as f64)),
                esc(&q.raw_key),
                q.quarantined_at.format("%Y-%m-%d %H:%M UTC"),
            );
        }
        body.push_str("</tbody></table>\n");
    }
}
