//! The report's charts, drawn with plotters' SVG backend into strings that
//! the pages inline.
//!
//! Text: plotters is built without its `ttf` and `ab_glyph` features, so it
//! reads no font file (a Lambda has none and this crate embeds none): the
//! SVG backend writes every label as an SVG `<text>` element that the
//! browser renders with its own `sans-serif`, and plotters sizes label boxes
//! (the legend's) with its built-in estimate (0.7 em per character) instead
//! of measuring glyphs. Embedding a font for `ab_glyph` would add ~100 KB to
//! every binary and measure text exactly, for a renderer (the browser) that
//! substitutes its own font anyway; the estimate is enough when axis label
//! areas have fixed sizes, as here.
//!
//! The x axis counts sessions (the index of the row), not calendar days, so
//! weekends and holidays leave no gaps; its labels are the rows' dates.

use std::error::Error;

use chrono::NaiveDate;
use mdp_core::CuratedRow;
use mdp_core::quality::{ActionKind, CorporateAction};
use plotters::coord::Shift;
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of the ticker page's charts (they shrink to the page with CSS).
pub const CHART_WIDTH: u32 = 1200;
/// Fixed label areas, the same on every chart, so the x axes line up.
const Y_LABEL_AREA: u32 = 90;
const X_LABEL_AREA: u32 = 46;
const RIGHT_MARGIN: u32 = 24;
const FONT: &str = "sans-serif";
/// plotters writes `font-size` = size / 1.24 in SVG: 15 is about 12 px.
const LABEL_SIZE: u32 = 15;
const CAPTION_SIZE: u32 = 21;

const GAIN: RGBColor = RGBColor(38, 166, 154);
const LOSS: RGBColor = RGBColor(239, 83, 80);
const SMA7: RGBColor = RGBColor(255, 143, 0);
const SMA20: RGBColor = RGBColor(30, 100, 200);
const BAND: RGBColor = RGBColor(120, 144, 200);
const DIVIDEND: RGBColor = RGBColor(46, 125, 50);
const SPLIT: RGBColor = RGBColor(142, 36, 170);
const RSI_LINE: RGBColor = RGBColor(103, 58, 183);
const SIGNAL: RGBColor = RGBColor(255, 111, 0);
const GRID: RGBColor = RGBColor(230, 230, 230);
const MUTED: RGBColor = RGBColor(110, 110, 110);

/// A chart that could not be drawn (the backend writes into a string, so
/// only a bug can cause one); the page shows the message instead.
#[derive(Debug, thiserror::Error)]
#[error("drawing the {chart} chart: {message}")]
pub struct ChartError {
    pub chart: &'static str,
    pub message: String,
}

type Drawn = Result<(), Box<dyn Error>>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordi32, RangedCoordf64>>;

/// Draws onto a white `size` SVG and returns it, tagged for the page: a
/// `chart` class and an accessible label.
fn render_svg<F>(
    chart: &'static str,
    size: (u32, u32),
    label: &str,
    draw: F,
) -> Result<String, ChartError>
where
    F: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Drawn,
{
    let mut buf = String::new();
    let fail = |e: &dyn std::fmt::Display| ChartError {
        chart,
        message: e.to_string(),
    };
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        draw(&root).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    let tagged = format!(
        "<svg class=\"chart chart-{chart}\" role=\"img\" aria-label=\"{}\" ",
        html_escape::encode_double_quoted_attribute(label)
    );
    Ok(buf.replacen("<svg ", &tagged, 1))
}

/// A value fit to draw: present and finite (a NaN would make an SVG
/// coordinate of "NaN").
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Runs of consecutive present values: a line breaks where a value is missing.
fn segments(points: impl IntoIterator<Item = (i32, Option<f64>)>) -> Vec<Vec<(i32, f64)>> {
    let mut out: Vec<Vec<(i32, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (x, y) in points {
        match finite(y) {
            Some(y) => current.push((x, y)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `lo..hi` padded by `pad` of its span (a flat series gets a span).
fn padded(values: impl Iterator<Item = f64>, pad: f64) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let span = if hi > lo {
        hi - lo
    } else {
        lo.abs().max(1.0) * 0.02
    };
    Some((lo - pad * span, hi + pad * span))
}

/// Open, high, low, close of a bar; missing prices fall back to the close.
fn ohlc(row: &CuratedRow) -> (f64, f64, f64, f64) {
    let c = row.bar.close;
    let o = finite(row.bar.open).unwrap_or(c);
    let h = finite(row.bar.high).unwrap_or(o.max(c)).max(o.max(c));
    let l = finite(row.bar.low).unwrap_or(o.min(c)).min(o.min(c));
    (o, h, l, c)
}

/// A price label with the decimals its magnitude needs.
pub fn format_price(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Labels of a price axis spanning `span`: one number of decimals for all
/// (3000, 2000, 1000, 0 — not 0.00 among them).
fn axis_label(span: f64) -> impl Fn(&f64) -> String {
    let decimals = if span >= 50.0 {
        0
    } else if span >= 0.5 {
        2
    } else {
        4
    };
    // `+ 0.0` turns a -0 tick into 0.
    move |v: &f64| format!("{:.decimals$}", *v + 0.0)
}

/// 1234567 → "1.2M".
pub fn format_count(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.0}K", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Pixels per session across the plot area, for candle widths.
fn candle_width(sessions: usize) -> u32 {
    let plot = f64::from(CHART_WIDTH - Y_LABEL_AREA - RIGHT_MARGIN);
    let per = plot / (sessions as f64 + 1.0);
    (per * 0.7).floor().clamp(1.0, 14.0) as u32
}

/// A chart over the sessions `0..dates.len()` with a titled, date-labelled
/// x axis and a described y axis.
fn session_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    sessions: usize,
    y: (f64, f64),
) -> Result<Chart<'a, 'b>, Box<dyn Error>> {
    Ok(ChartBuilder::on(root)
        .caption(caption, text(CAPTION_SIZE))
        .margin_top(6)
        .margin_right(RIGHT_MARGIN)
        .margin_left(6)
        .margin_bottom(4)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(-1..sessions as i32, y.0..y.1)?)
}

fn draw_mesh<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    dates: &[NaiveDate],
    y_desc: &str,
    y_format: &dyn Fn(&f64) -> String,
) -> Drawn {
    let x_format = |i: &i32| {
        usize::try_from(*i)
            .ok()
            .and_then(|i| dates.get(i))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&x_format)
        .y_label_formatter(y_format)
        .x_desc("Date (trading sessions)")
        .y_desc(y_desc)
        .label_style(text(LABEL_SIZE))
        .axis_desc_style(text(LABEL_SIZE))
        .draw()?;
    Ok(())
}

fn draw_legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition) -> Drawn {
    chart
        .configure_series_labels()
        .position(position)
        .margin(8)
        .label_font(text(LABEL_SIZE))
        .background_style(WHITE.mix(0.85))
        .border_style(MUTED.mix(0.6))
        .draw()?;
    Ok(())
}

/// A line (broken where values are missing) with one legend entry.
fn draw_line<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    points: impl IntoIterator<Item = (i32, Option<f64>)>,
    color: RGBColor,
    width: u32,
    label: &str,
) -> Drawn {
    for (k, segment) in segments(points).into_iter().enumerate() {
        let series = chart.draw_series(LineSeries::new(segment, color.stroke_width(width)))?;
        if k == 0 && !label.is_empty() {
            series.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3))
            });
        }
    }
    Ok(())
}

/// The session index of each action inside the charted rows (the first
/// session on or after its date, as a dividend's ex-date may fall on a
/// holiday), with the action.
fn actions_in<'a>(
    dates: &[NaiveDate],
    actions: &'a [CorporateAction],
) -> Vec<(usize, &'a CorporateAction)> {
    let (Some(first), Some(last)) = (dates.first(), dates.last()) else {
        return Vec::new();
    };
    actions
        .iter()
        .filter(|a| a.date >= *first && a.date <= *last)
        .map(|a| (dates.partition_point(|d| *d < a.date), a))
        .collect()
}

/// "4:1" for a split, "0.56" for a dividend.
pub fn action_label(action: &CorporateAction) -> String {
    match action.kind {
        ActionKind::Dividend => action
            .amount
            .filter(|a| a.is_finite())
            .map_or("?".into(), |a| format!("{a}")),
        ActionKind::Split => match (action.numerator, action.denominator) {
            (Some(n), Some(d)) if n.is_finite() && d.is_finite() => format!("{n}:{d}"),
            _ => "?".into(),
        },
    }
}

/// Candles with SMA 7, SMA 20 and the Bollinger band, dividends marked
/// under their bar and splits over it.
pub fn price_chart(
    title: &str,
    currency: Option<&str>,
    rows: &[CuratedRow],
    actions: &[CorporateAction],
) -> Result<String, ChartError> {
    let dates: Vec<NaiveDate> = rows.iter().map(|r| r.bar.date).collect();
    let label = format!("{title}: price, SMA 7, SMA 20, Bollinger bands");
    render_svg("price", (CHART_WIDTH, 500), &label, |root| {
        let values = rows.iter().flat_map(|r| {
            let (_, h, l, _) = ohlc(r);
            [
                Some(h),
                Some(l),
                r.indicators.bb_upper,
                r.indicators.bb_lower,
            ]
            .into_iter()
            .flatten()
        });
        let Some(y) = padded(values, 0.1) else {
            return Ok(());
        };
        let mut chart = session_chart(root, title, rows.len(), y)?;
        let y_desc = format!("Price ({})", currency.unwrap_or("quote currency"));
        draw_mesh(&mut chart, &dates, &y_desc, &axis_label(y.1 - y.0))?;

        // The band first, under everything else.
        let upper: Vec<(i32, Option<f64>)> = (0..)
            .zip(rows.iter().map(|r| r.indicators.bb_upper))
            .collect();
        let lower: Vec<(i32, Option<f64>)> = (0..)
            .zip(rows.iter().map(|r| r.indicators.bb_lower))
            .collect();
        let both = (0..).zip(rows.iter().map(|r| {
            finite(r.indicators.bb_upper)
                .and(finite(r.indicators.bb_lower))
                .map(|_| 0.0)
        }));
        for (k, run) in segments(both).into_iter().enumerate() {
            let (from, to) = (run[0].0 as usize, run[run.len() - 1].0 as usize);
            let mut polygon: Vec<(i32, f64)> = (from..=to)
                .filter_map(|i| finite(rows[i].indicators.bb_upper).map(|v| (i as i32, v)))
                .collect();
            polygon.extend(
                (from..=to)
                    .rev()
                    .filter_map(|i| finite(rows[i].indicators.bb_lower).map(|v| (i as i32, v))),
            );
            let series = chart.draw_series(std::iter::once(Polygon::new(
                polygon,
                BAND.mix(0.15).filled(),
            )))?;
            if k == 0 {
                series.label("Bollinger bands (20, 2σ)").legend(|(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 22, y + 5)], BAND.mix(0.35).filled())
                });
            }
        }
        draw_line(&mut chart, upper, BAND, 1, "")?;
        draw_line(&mut chart, lower, BAND, 1, "")?;

        let width = candle_width(rows.len());
        chart
            .draw_series(rows.iter().zip(0..).map(|(r, i)| {
                let (o, h, l, c) = ohlc(r);
                CandleStick::new(i, o, h, l, c, GAIN.filled(), LOSS.filled(), width)
            }))?
            .label("Daily candles (open, high, low, close)")
            .legend(|(x, y)| Rectangle::new([(x + 6, y - 6), (x + 16, y + 6)], GAIN.filled()));
        draw_line(
            &mut chart,
            (0..).zip(rows.iter().map(|r| r.indicators.sma_7)),
            SMA7,
            2,
            "SMA 7",
        )?;
        draw_line(
            &mut chart,
            (0..).zip(rows.iter().map(|r| r.indicators.sma_20)),
            SMA20,
            2,
            "SMA 20",
        )?;

        let marked = actions_in(&dates, actions);
        let dividends: Vec<_> = marked
            .iter()
            .filter(|(_, a)| a.kind == ActionKind::Dividend)
            .collect();
        let splits: Vec<_> = marked
            .iter()
            .filter(|(_, a)| a.kind == ActionKind::Split)
            .collect();
        let below = text(LABEL_SIZE - 2)
            .color(&DIVIDEND)
            .pos(Pos::new(HPos::Center, VPos::Top));
        let above = text(LABEL_SIZE - 1)
            .color(&SPLIT)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        if !dividends.is_empty() {
            chart
                .draw_series(dividends.iter().map(|(i, a)| {
                    let (_, _, low, _) = ohlc(&rows[*i]);
                    EmptyElement::at((*i as i32, low))
                        + TriangleMarker::new((0, 12), 6, DIVIDEND.filled())
                        + Text::new(action_label(a), (0, 20), below.clone())
                }))?
                .label("Dividend (ex-date, amount per share)")
                .legend(|(x, y)| TriangleMarker::new((x + 11, y), 6, DIVIDEND.filled()));
        }
        if !splits.is_empty() {
            chart
                .draw_series(splits.iter().map(|(i, a)| {
                    let (_, high, _, _) = ohlc(&rows[*i]);
                    EmptyElement::at((*i as i32, high))
                        + Circle::new((0, -12), 6, SPLIT.filled())
                        + Text::new(
                            format!("split {}", action_label(a)),
                            (0, -21),
                            above.clone(),
                        )
                }))?
                .label("Split (ratio)")
                .legend(|(x, y)| Circle::new((x + 11, y), 6, SPLIT.filled()));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// Volume bars, coloured by the day's direction.
pub fn volume_chart(title: &str, rows: &[CuratedRow]) -> Result<String, ChartError> {
    let dates: Vec<NaiveDate> = rows.iter().map(|r| r.bar.date).collect();
    render_svg(
        "volume",
        (CHART_WIDTH, 200),
        &format!("{title}: volume"),
        |root| {
            let max = rows
                .iter()
                .filter_map(|r| r.bar.volume)
                .filter(|v| *v > 0)
                .max()
                .unwrap_or(1) as f64;
            let mut chart = session_chart(
                root,
                &format!("{title}: volume"),
                rows.len(),
                (0.0, max * 1.08),
            )?;
            draw_mesh(&mut chart, &dates, "Shares traded", &|v| format_count(*v))?;
            let width = candle_width(rows.len());
            chart.draw_series(rows.iter().zip(0..).filter_map(|(r, i)| {
                let v = r.bar.volume.filter(|v| *v > 0)? as f64;
                let (o, _, _, c) = ohlc(r);
                let style = if c >= o {
                    GAIN.mix(0.7).filled()
                } else {
                    LOSS.mix(0.7).filled()
                };
                // A candle from 0 to the volume is a bar of the candles' width.
                Some(CandleStick::new(i, 0.0, v, 0.0, v, style, style, width))
            }))?;
            Ok(())
        },
    )
}

/// RSI 14 with its 30 and 70 lines.
pub fn rsi_chart(title: &str, rows: &[CuratedRow]) -> Result<String, ChartError> {
    let dates: Vec<NaiveDate> = rows.iter().map(|r| r.bar.date).collect();
    render_svg(
        "rsi",
        (CHART_WIDTH, 230),
        &format!("{title}: RSI 14"),
        |root| {
            let mut chart = session_chart(
                root,
                &format!("{title}: RSI (14)"),
                rows.len(),
                (0.0, 100.0),
            )?;
            draw_mesh(&mut chart, &dates, "RSI", &|v| format!("{v:.0}"))?;
            let end = rows.len() as i32;
            draw_line(
                &mut chart,
                [(-1, Some(70.0)), (end, Some(70.0))],
                LOSS,
                1,
                "70: overbought",
            )?;
            draw_line(
                &mut chart,
                [(-1, Some(30.0)), (end, Some(30.0))],
                GAIN,
                1,
                "30: oversold",
            )?;
            draw_line(
                &mut chart,
                (0..).zip(rows.iter().map(|r| r.indicators.rsi)),
                RSI_LINE,
                2,
                "RSI 14",
            )?;
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
        },
    )
}

/// MACD (12, 26), its signal (9) and their difference as a histogram.
pub fn macd_chart(title: &str, rows: &[CuratedRow]) -> Result<String, ChartError> {
    let dates: Vec<NaiveDate> = rows.iter().map(|r| r.bar.date).collect();
    render_svg(
        "macd",
        (CHART_WIDTH, 250),
        &format!("{title}: MACD"),
        |root| {
            let values = rows.iter().flat_map(|r| {
                [
                    r.indicators.macd,
                    r.indicators.macd_signal,
                    r.indicators.macd_histogram,
                    Some(0.0),
                ]
                .into_iter()
                .flatten()
            });
            let Some(y) = padded(values, 0.08) else {
                return Ok(());
            };
            let mut chart =
                session_chart(root, &format!("{title}: MACD (12, 26, 9)"), rows.len(), y)?;
            draw_mesh(&mut chart, &dates, "MACD", &axis_label(y.1 - y.0))?;
            let width = candle_width(rows.len());
            chart
                .draw_series(rows.iter().zip(0..).filter_map(|(r, i)| {
                    let h = finite(r.indicators.macd_histogram)?;
                    Some(CandleStick::new(
                        i,
                        0.0,
                        h.max(0.0),
                        h.min(0.0),
                        h,
                        GAIN.mix(0.6).filled(),
                        LOSS.mix(0.6).filled(),
                        width,
                    ))
                }))?
                .label("Histogram (MACD − signal)")
                .legend(|(x, y)| {
                    Rectangle::new([(x + 6, y - 6), (x + 16, y + 6)], MUTED.mix(0.6).filled())
                });
            draw_line(
                &mut chart,
                (0..).zip(rows.iter().map(|r| r.indicators.macd)),
                SMA20,
                2,
                "MACD",
            )?;
            draw_line(
                &mut chart,
                (0..).zip(rows.iter().map(|r| r.indicators.macd_signal)),
                SIGNAL,
                2,
                "Signal (EMA 9 of MACD)",
            )?;
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
        },
    )
}

/// The close over the whole history, the charted window shaded.
pub fn history_chart(
    title: &str,
    currency: Option<&str>,
    rows: &[CuratedRow],
    window_start: usize,
) -> Result<String, ChartError> {
    let dates: Vec<NaiveDate> = rows.iter().map(|r| r.bar.date).collect();
    render_svg(
        "history",
        (CHART_WIDTH, 240),
        &format!("{title}: whole history"),
        |root| {
            let Some(y) = padded(rows.iter().map(|r| r.bar.close), 0.08) else {
                return Ok(());
            };
            let mut chart = session_chart(
                root,
                &format!("{title}: whole history (close)"),
                rows.len(),
                y,
            )?;
            let y_desc = format!("Close ({})", currency.unwrap_or("quote currency"));
            draw_mesh(&mut chart, &dates, &y_desc, &axis_label(y.1 - y.0))?;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(window_start as i32, y.0), (rows.len() as i32, y.1)],
                    SMA20.mix(0.08).filled(),
                )))?
                .label("Charted in detail below")
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 22, y + 5)], SMA20.mix(0.2).filled())
                });
            draw_line(
                &mut chart,
                (0..).zip(rows.iter().map(|r| Some(r.bar.close))),
                SMA20,
                1,
                "Close",
            )?;
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
        },
    )
}

/// A small close line for the index (no axes), green when the window ends
/// above where it started.
pub fn sparkline(label: &str, closes: &[f64]) -> Result<Option<String>, ChartError> {
    let points: Vec<(i32, f64)> = (0..)
        .zip(closes.iter().copied())
        .filter(|(_, c)| c.is_finite())
        .collect();
    if points.len() < 2 {
        return Ok(None);
    }
    let rising = points[points.len() - 1].1 >= points[0].1;
    let color = if rising { GAIN } else { LOSS };
    let n = closes.len() as i32;
    render_svg("sparkline", (150, 36), label, |root| {
        let Some(y) = padded(points.iter().map(|p| p.1), 0.05) else {
            return Ok(());
        };
        let mut chart = ChartBuilder::on(root)
            .margin(3)
            .build_cartesian_2d(0..n - 1, y.0..y.1)?;
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))?;
        Ok(())
    })
    .map(Some)
}
