//! Chart responses from the recorded fixtures: bars, dates in the exchange's
//! time zone, nulls, meta, and how each HTTP outcome is classified.

use chrono::{FixedOffset, NaiveDate};
use mdp_core::chart::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/yahoo/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn series(name: &str) -> ChartSeries {
    match classify_response(200, &fixture(name)) {
        ChartOutcome::Series(s) => *s,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn msft_year_of_daily_bars_with_meta_and_whole_number_prices() {
    let s = series("msft_1d_range_2021-02-01_2022-01-28_dividends.json");
    assert_eq!(s.bars.len(), 252);
    assert_eq!(s.dropped_without_close, 0);
    assert_eq!(s.bars[0].date, d("2021-02-01"));
    assert_eq!(s.bars[251].date, d("2022-01-28"));
    assert_eq!(s.zone, ExchangeZone::Named(chrono_tz::America::New_York));
    assert!(
        s.bars
            .iter()
            .all(|b| b.adj_close.is_some() && b.volume.is_some() && b.open.is_some())
    );
    assert!(s.bars.windows(2).all(|w| w[0].date < w[1].date));
    // The fixture writes some prices as bare integers (`243`): they parse as floats.
    let raw: serde_json::Value = serde_json::from_slice(&fixture(
        "msft_1d_range_2021-02-01_2022-01-28_dividends.json",
    ))
    .unwrap();
    let quote = &raw["chart"]["result"][0]["indicators"]["quote"][0];
    for (i, bar) in s.bars.iter().enumerate() {
        assert_eq!(bar.close, quote["close"][i].as_f64().unwrap());
        assert_eq!(bar.volume, quote["volume"][i].as_i64());
    }
    assert!(
        quote["close"]
            .as_array()
            .unwrap()
            .iter()
            .chain(quote["open"].as_array().unwrap())
            .any(|v| v.is_u64())
    );
    assert_eq!(s.meta.currency.as_deref(), Some("USD"));
    assert_eq!(s.meta.exchange.as_deref(), Some("NMS"));
    assert_eq!(s.meta.instrument_type.as_deref(), Some("EQUITY"));
    assert_eq!(s.meta.long_name.as_deref(), Some("Microsoft Corporation"));
    assert_eq!(s.meta.short_name.as_deref(), Some("Microsoft Corporation"));
    assert_eq!(s.meta.regular_market_price, Some(408.21));
    assert_eq!(s.meta.fifty_two_week_high, Some(468.35));
    assert!(s.meta.fifty_two_week_low.is_some());
    assert_eq!(s.symbol.as_deref(), Some("MSFT"));
}

#[test]
fn btc_drops_the_four_null_bars_and_keeps_utc_dates() {
    let s = series("btc-usd_1d_range_2020_nulls.json");
    assert_eq!(s.dropped_without_close, 4);
    assert_eq!(s.bars.len(), 366);
    assert_eq!(s.zone, ExchangeZone::Named(chrono_tz::UTC));
    assert_eq!(s.bars[0].date, d("2020-01-01"));
    assert_eq!(s.bars.last().unwrap().date, d("2021-01-04"));
    for gap in ["2020-04-17", "2020-10-09", "2020-10-12", "2020-10-13"] {
        assert!(
            s.bars.iter().all(|b| b.date != d(gap)),
            "{gap} should be dropped"
        );
    }
    assert!(s.bars.iter().any(|b| b.date == d("2020-10-10")));
    assert_eq!(s.meta.long_name, None);
    assert_eq!(s.meta.instrument_type.as_deref(), Some("CRYPTOCURRENCY"));
    let range = s.bars_in_range(d("2020-10-01"), d("2020-10-31"));
    assert_eq!(range.len(), 31 - 3);
    assert_eq!(range[0].date, d("2020-10-01"));
    assert_eq!(range.last().unwrap().date, d("2020-10-31"));
}

#[test]
fn wsu_null_middle_row_is_dropped_and_dates_are_berlin_dates() {
    let body = fixture("wsu.de_1d_range_2023-08-04_2023-08-08_null_row.json");
    let s = series("wsu.de_1d_range_2023-08-04_2023-08-08_null_row.json");
    let dates: Vec<NaiveDate> = s.bars.iter().map(|b| b.date).collect();
    assert_eq!(dates, [d("2023-08-04"), d("2023-08-08")]);
    assert_eq!(s.dropped_without_close, 1);
    assert_eq!(s.meta.currency.as_deref(), Some("EUR"));
    assert_eq!(s.meta.exchange.as_deref(), Some("GER"));
    assert_eq!(s.zone, ExchangeZone::Named(chrono_tz::Europe::Berlin));

    // Without the zone name, meta.gmtoffset (7200 s) decides the date.
    let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let meta = v["chart"]["result"][0]["meta"].as_object_mut().unwrap();
    meta.remove("exchangeTimezoneName");
    let s2 = parse_chart(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(
        s2.zone,
        ExchangeZone::Offset(FixedOffset::east_opt(7200).unwrap())
    );
    assert_eq!(s2.bars.iter().map(|b| b.date).collect::<Vec<_>>(), dates);
}

#[test]
fn exchange_zone_not_utc_decides_the_date() {
    // A Sydney session opening at 10:00 AEDT is 23:00 UTC the day before.
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("aps.ax_1d_empty_result_no_timestamp.json")).unwrap();
    let result = &mut v["chart"]["result"][0];
    result["timestamp"] = serde_json::json!([1_704_150_000]); // 2024-01-01T23:00:00Z
    result["indicators"] = serde_json::json!({"quote":[{"open":[1.0],"high":[1.0],"low":[1.0],"close":[1.0],"volume":[null]}]});
    let s = parse_chart(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(s.bars[0].date, d("2024-01-02"));
    assert_eq!(s.bars[0].volume, None, "null volume stays null");
    assert_eq!(s.bars[0].adj_close, None, "absent adjclose is null");
}

#[test]
fn aapl_dst_crossing_single_day_and_live_last_bar() {
    let s = series("aapl_1d_range_2020-08-31_2020-11-06_div_split.json");
    assert_eq!(s.bars.len(), 49);
    assert_eq!(s.bars[0].date, d("2020-08-31"));
    assert_eq!(s.bars[48].date, d("2020-11-06"));
    // 13:30Z before and 14:30Z after the DST change are both 09:30 New York.
    assert!(s.bars.iter().any(|b| b.date == d("2020-10-30")));
    assert!(s.bars.iter().any(|b| b.date == d("2020-11-02")));
    assert!(
        s.bars
            .iter()
            .all(|b| !matches!(b.date.format("%a").to_string().as_str(), "Sat" | "Sun"))
    );

    let one = series("aapl_1d_single_day_2020-01-02.json");
    assert_eq!(one.bars.len(), 1);
    assert_eq!(one.bars[0].date, d("2020-01-02"));
    assert!(one.bars[0].adj_close.is_some());

    // The live bar is stamped 20:00:01Z = 16:00:01 New York, same date.
    let live = series("aapl_1d_range6mo_live_last_bar_dividends.json");
    assert_eq!(live.bars.len(), 127);
    assert_eq!(live.bars[0].date, d("2025-04-30"));
    assert_eq!(live.bars[126].date, d("2025-10-29"));
}

#[test]
fn intraday_null_bar_is_dropped_and_no_adjclose_means_null() {
    let s = series("aapl_1m_intraday_2024-10-02_null_bar.json");
    assert_eq!(s.dropped_without_close, 1);
    assert!(s.bars.iter().all(|b| b.adj_close.is_none()));
}

#[test]
fn empty_result_is_success_with_zero_bars() {
    let s = series("aps.ax_1d_empty_result_no_timestamp.json");
    assert!(s.bars.is_empty());
    assert_eq!(s.dropped_without_close, 0);
    assert_eq!(s.meta.currency.as_deref(), Some("AUD"));
    assert_eq!(s.zone, ExchangeZone::Named(chrono_tz::Australia::Sydney));
}

#[test]
fn error_statuses_are_classified_as_the_design_says() {
    match classify_response(404, &fixture("six_error_404_not_found.json")) {
        ChartOutcome::Permanent(m) => assert!(
            m.contains("404") && m.contains("symbol may be delisted"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    match classify_response(
        400,
        &fixture("beke_error_400_bad_request_range_before_listing.json"),
    ) {
        ChartOutcome::NoData(m) => {
            assert!(m.starts_with("Data doesn't exist for startDate"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let other_400 = br#"{"chart":{"result":null,"error":{"code":"Bad Request","description":"Invalid input - interval=2x is not supported"}}}"#;
    assert!(matches!(
        classify_response(400, other_400),
        ChartOutcome::Permanent(_)
    ));
    for status in [429, 500, 502, 503, 504] {
        assert!(
            matches!(
                classify_response(status, b"<html>busy</html>"),
                ChartOutcome::Transient(_)
            ),
            "{status}"
        );
    }
    assert!(matches!(
        classify_response(401, b"{}"),
        ChartOutcome::Permanent(_)
    ));
}

#[test]
fn unparseable_or_inconsistent_200_bodies_are_transient() {
    let full = fixture("msft_1d_range_2021-02-01_2022-01-28_dividends.json");
    let truncated = &full[..full.len() / 2];
    match classify_response(200, truncated) {
        ChartOutcome::Transient(m) => assert!(m.contains("unparseable"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        classify_response(200, b"<html>captcha</html>"),
        ChartOutcome::Transient(_)
    ));
    assert!(matches!(
        classify_response(200, br#"{"chart":{"result":[],"error":null}}"#),
        ChartOutcome::Transient(_)
    ));
    let mut v: serde_json::Value = serde_json::from_slice(&full).unwrap();
    v["chart"]["result"][0]["indicators"]["quote"][0]["close"]
        .as_array_mut()
        .unwrap()
        .pop();
    match parse_chart(&serde_json::to_vec(&v).unwrap()) {
        Err(ChartParseError::LengthMismatch {
            name: "close",
            len: 251,
            expected: 252,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicate_dates_keep_the_later_bar() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("aapl_1d_single_day_2020-01-02.json")).unwrap();
    let r = &mut v["chart"]["result"][0];
    r["timestamp"] = serde_json::json!([1_577_975_400, 1_578_000_000]); // 09:30 and 16:20 NY
    r["indicators"] = serde_json::json!({"quote":[{"close":[1.0, 2.0],"volume":[10, 1.2e3]}]});
    let s = parse_chart(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(s.bars.len(), 1);
    assert_eq!(s.bars[0].close, 2.0);
    assert_eq!(s.bars[0].volume, Some(1200));
    assert_eq!(s.bars[0].open, None);
}

#[test]
fn dividends_and_splits_are_read_from_events_in_the_exchange_time_zone() {
    use mdp_core::quality::ActionKind;
    let s = series("aapl_1d_range_2020-08-31_2020-11-06_div_split.json");
    let kinds: Vec<(NaiveDate, ActionKind)> = s.actions.iter().map(|a| (a.date, a.kind)).collect();
    // 1598880600 = 2020-08-31 13:30Z (09:30 New York); 1604673000 = 2020-11-06 14:30Z.
    assert_eq!(
        kinds,
        vec![
            (d("2020-08-31"), ActionKind::Split),
            (d("2020-11-06"), ActionKind::Dividend)
        ]
    );
    assert_eq!(s.actions[0].ratio(), Some(4.0));
    assert_eq!(s.actions[0].amount, None);
    assert_eq!(s.actions[1].amount, Some(0.205));
    assert_eq!(s.events_ignored, 0);
    assert_eq!(
        s.actions_in_range(d("2020-09-01"), d("2020-11-06")).len(),
        1
    );

    let msft = series("msft_1d_range_2021-02-01_2022-01-28_dividends.json");
    let raw: serde_json::Value = serde_json::from_slice(&fixture(
        "msft_1d_range_2021-02-01_2022-01-28_dividends.json",
    ))
    .unwrap();
    let mut amounts: Vec<f64> = raw["chart"]["result"][0]["events"]["dividends"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v["amount"].as_f64().unwrap())
        .collect();
    amounts.sort_by(f64::total_cmp);
    let mut parsed: Vec<f64> = msft.actions.iter().map(|a| a.amount.unwrap()).collect();
    parsed.sort_by(f64::total_cmp);
    assert_eq!(msft.actions.len(), 4);
    assert_eq!(parsed, amounts);
    // Every MSFT dividend is dated on a day with a bar (an ex-dividend session).
    for action in &msft.actions {
        assert!(
            msft.bars.iter().any(|b| b.date == action.date),
            "{action:?}"
        );
    }
    assert!(
        series("aapl_1d_single_day_2020-01-02.json")
            .actions
            .is_empty()
    );
}

#[test]
fn unreadable_events_are_skipped_and_counted_and_the_bars_still_parse() {
    let body = br#"{"chart":{"result":[{"meta":{"exchangeTimezoneName":"America/New_York"},
        "timestamp":[1577975400],
        "indicators":{"quote":[{"open":[1.0],"high":[2.0],"low":[0.5],"close":[1.5],"volume":[10]}]},
        "events":{"dividends":{"1577975400":{"amount":"lots","date":1577975400},
                               "x":{"amount":0.5},
                               "1577975401":{"amount":0.25,"date":1577975400},
                               "1577975402":{"amount":0.3,"date":99999999999999}},
                  "splits":{"1577975400":{"date":1577975400,"numerator":0,"denominator":1},
                            "1577975401":{"date":1577975400,"numerator":3,"denominator":2}},
                  "earnings":[1,2,3]}}],"error":null}}"#;
    let s = parse_chart(body).unwrap();
    assert_eq!(s.bars.len(), 1);
    assert_eq!(s.events_ignored, 4, "{:?}", s.actions);
    assert_eq!(s.actions.len(), 2);
    assert_eq!(s.actions[0].amount, Some(0.25));
    assert_eq!(s.actions[1].ratio(), Some(1.5));
    // `events` of the wrong shape is no events at all.
    let body = br#"{"chart":{"result":[{"meta":{},"timestamp":[],"events":[1]}]}}"#;
    let s = parse_chart(body).unwrap();
    assert!(s.actions.is_empty());
}

#[test]
fn a_replaced_bar_of_the_same_date_is_kept_aside_unless_identical() {
    // Two bars dated 2020-01-02 (09:30 and 16:00 New York) and an identical repeat of 01-03.
    let body = br#"{"chart":{"result":[{"meta":{"exchangeTimezoneName":"America/New_York"},
        "timestamp":[1577975400,1577998800,1578061800,1578061800],
        "indicators":{"quote":[{"open":[1.0,1.0,2.0,2.0],"high":[2.0,2.5,3.0,3.0],
          "low":[0.5,0.5,1.0,1.0],"close":[1.5,2.25,2.5,2.5],"volume":[10,20,30,30]}]}}],"error":null}}"#;
    let s = parse_chart(body).unwrap();
    assert_eq!(s.bars.len(), 2);
    assert_eq!(s.bars[0].close, 2.25, "the later bar of a date wins");
    assert_eq!(s.superseded.len(), 1);
    assert_eq!(s.superseded[0].close, 1.5);
    assert_eq!(
        s.superseded_in_range(d("2020-01-03"), d("2020-01-03"))
            .len(),
        0
    );
}
