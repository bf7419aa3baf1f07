//! Generated hostile chart responses (issue 8 item 10): arbitrary bytes,
//! arbitrary JSON shaped like a chart response, and mutations of the real
//! recorded responses in `tests/fixtures/yahoo/`. Property: `parse_chart`
//! and `classify_response` never panic; an `Ok` has bars sorted by date, one
//! per date, each with a finite close; `classify_response` agrees with
//! `parse_chart` on a 2xx status.
//!
//! 10,000 cases per property by default (`MDP_FUZZ_CASES` overrides it, e.g.
//! `make fuzz`); a fixed seed (`MDP_FUZZ_SEED=N` or `random` changes it) and
//! no failure persistence, so nothing is written into the repository.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use mdp_core::chart::{ChartOutcome, ChartParseError, classify_response, parse_chart};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

mod fuzz_support;
use fuzz_support::fuzz_config;

// ---------------------------------------------------------------- the property

/// The contract of a parsed response, and `classify_response` agreeing with it.
fn check_body(body: &[u8]) -> Result<(), TestCaseError> {
    let parsed = parse_chart(body);
    match &parsed {
        Ok(series) => {
            for bar in &series.bars {
                prop_assert!(bar.close.is_finite(), "close {} kept", bar.close);
            }
            for pair in series.bars.windows(2) {
                prop_assert!(
                    pair[0].date < pair[1].date,
                    "bars not sorted/unique: {} then {}",
                    pair[0].date,
                    pair[1].date
                );
            }
        }
        Err(e) => {
            let text = e.to_string();
            prop_assert!(!text.trim().is_empty(), "empty error text: {e:?}");
        }
    }
    // A 200 is the parse: its series, an API error (permanent) or else transient.
    match (classify_response(200, body), &parsed) {
        (ChartOutcome::Series(s), Ok(p)) => prop_assert_eq!(&*s, p),
        (ChartOutcome::Permanent(_), Err(ChartParseError::ApiError(_))) => {}
        (ChartOutcome::Transient(_), Err(e)) if !matches!(e, ChartParseError::ApiError(_)) => {}
        (outcome, parsed) => prop_assert!(false, "200: {outcome:?} but parse gave {parsed:?}"),
    }
    Ok(())
}

/// Any status with any body: never panics, and a 404 is never success.
fn check_status(status: u16, body: &[u8]) -> Result<(), TestCaseError> {
    let outcome = classify_response(status, body);
    if status == 404 {
        prop_assert!(matches!(outcome, ChartOutcome::Permanent(_)), "{outcome:?}");
    }
    if let ChartOutcome::Series(series) = outcome {
        prop_assert!((200..=299).contains(&status));
        prop_assert!(series.bars.windows(2).all(|w| w[0].date < w[1].date));
        prop_assert!(series.bars.iter().all(|b| b.close.is_finite()));
    }
    Ok(())
}

// ---------------------------------------------------------------- the fixtures

fn fixture_dir() -> String {
    format!("{}/../../tests/fixtures/yahoo", env!("CARGO_MANIFEST_DIR"))
}

/// Array pointers (relative to `/chart/result/0`) that hold one value per timestamp.
const SERIES_ARRAYS: [&str; 7] = [
    "/timestamp",
    "/indicators/quote/0/open",
    "/indicators/quote/0/high",
    "/indicators/quote/0/low",
    "/indicators/quote/0/close",
    "/indicators/quote/0/volume",
    "/indicators/adjclose/0/adjclose",
];

/// Every recorded response, in full and as a few small windows of at most 12
/// bars (head, tail, around the first bar without a close): small inputs
/// keep 10,000 debug-build cases fast, the windows keep what each recording
/// is about (nulls, a live last bar, a split, an intraday day).
static FIXTURES: LazyLock<Vec<(String, Value)>> = LazyLock::new(|| {
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(fixture_dir())
        .expect("fixture dir")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "fixtures: {names:?}");
    for name in names {
        let bytes = std::fs::read(format!("{}/{name}", fixture_dir())).unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let n = value
            .pointer("/chart/result/0/timestamp")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let mut windows = vec![(0, n.min(12)), (n.saturating_sub(12), n)];
        if let Some(i) = value
            .pointer("/chart/result/0/indicators/quote/0/close")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().position(Value::is_null))
        {
            windows.push((i.saturating_sub(6), (i + 6).min(n)));
        }
        windows.dedup();
        for (from, to) in windows {
            let mut small = value.clone();
            if let Some(result) = small.pointer_mut("/chart/result/0") {
                for pointer in SERIES_ARRAYS {
                    if let Some(Value::Array(a)) = result.pointer_mut(pointer)
                        && a.len() == n
                    {
                        *a = a[from..to].to_vec();
                    }
                }
                if let Some(meta) = result.pointer_mut("/meta").and_then(Value::as_object_mut) {
                    meta.remove("tradingPeriods");
                }
            }
            out.push((format!("{name}[{from}..{to}]"), small));
        }
        out.push((name, value));
    }
    out
});

// ---------------------------------------------------------------- hostile values

static TIMESTAMP_BOUNDS: LazyLock<[i64; 2]> = LazyLock::new(|| {
    [
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    ]
});

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Epoch seconds around the ends of what chrono represents, of what the
/// parser accepts (1970 to 9999), and anywhere.
fn hostile_timestamp() -> impl Strategy<Value = i64> {
    let [min, max] = *TIMESTAMP_BOUNDS;
    let year_10000 = 253_402_300_800i64;
    prop_oneof![
        // Within a day or so of each end, where a zone's offset crosses it.
        (-100_000i64..=100_000).prop_map(move |d| max.saturating_add(d)),
        (-100_000i64..=100_000).prop_map(move |d| min.saturating_add(d)),
        (-100_000i64..=100_000).prop_map(move |d| year_10000 + d),
        -100_000i64..=100_000,
        Just(min),
        Just(max),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0),
        Just(-1),
        any::<i64>(),
        // Around now, the way real bars are stamped.
        1_500_000_000i64..1_800_000_000,
    ]
}

fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        hostile_timestamp().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(float),
        prop::sample::select(vec![
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            -0.0,
            0.5,
            -1.5,
            1e15,
            9.0e15,
            9.007_199_254_740_993e15,
            1.2e7,
            2_147_483_648.0,
            -2_147_483_649.0,
            86_399.0,
            -86_399.0,
            86_400.0,
            50_400.0,
            1e300,
            -1e300,
        ])
        .prop_map(float),
    ]
}

// Strategies built once per thread: a regex strategy compiles its regex
// when built, and the chart-shaped strategy asks for these per case.
thread_local! {
    static HOSTILE_STRING: BoxedStrategy<String> = hostile_string_uncached().boxed();
    static ANY_JSON: BoxedStrategy<Value> = any_json_uncached().boxed();
}

fn hostile_string() -> BoxedStrategy<String> {
    HOSTILE_STRING.with(Clone::clone)
}

fn any_json() -> BoxedStrategy<Value> {
    ANY_JSON.with(Clone::clone)
}

fn hostile_string_uncached() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,16}",
        ".{0,6}",
        prop::sample::select(vec![
            "",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "America/New_York",
            "Europe/Berlin",
            "Asia/Kolkata",
            "Pacific/Kiritimati",
            "Etc/GMT+12",
            "Etc/GMT-14",
            "UTC",
            "utc",
            "america/new_york",
            "America/New_York\u{0}",
            "+05:30",
            "Data doesn't exist for startDate = 1, endDate = 2",
            "Not Found",
            "\u{202e}GSPC",
            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        ])
        .prop_map(str::to_string),
    ]
}

/// Keys the chart parser reads, so random objects reach its fields.
const KEYS: [&str; 27] = [
    "chart",
    "result",
    "error",
    "code",
    "description",
    "meta",
    "timestamp",
    "indicators",
    "quote",
    "adjclose",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "currency",
    "symbol",
    "exchangeName",
    "instrumentType",
    "exchangeTimezoneName",
    "gmtoffset",
    "regularMarketPrice",
    "fiftyTwoWeekHigh",
    "fiftyTwoWeekLow",
    "longName",
    "shortName",
    "events",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_string),
        1 => "\\PC{0,6}",
    ]
}

fn hostile_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        hostile_number(),
        hostile_string().prop_map(Value::String),
    ]
}

/// Any JSON value, objects keyed mostly by the chart's own field names.
fn any_json_uncached() -> impl Strategy<Value = Value> {
    hostile_leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field that is absent, of the expected shape, or anything.
fn field(
    name: &'static str,
    expected: BoxedStrategy<Value>,
) -> impl Strategy<Value = Option<(&'static str, Value)>> {
    prop_oneof![
        2 => Just(None),
        30 => expected.prop_map(move |v| Some((name, v))),
        1 => any_json().prop_map(move |v| Some((name, v))),
    ]
}

fn object(fields: Vec<Option<(&'static str, Value)>>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn series_of(values: BoxedStrategy<Value>, len: usize) -> BoxedStrategy<Value> {
    // Mostly the timestamps' length, sometimes another one.
    prop_oneof![
        4 => vec(values.clone(), len..=len),
        1 => vec(values, 0..8),
    ]
    .prop_map(Value::Array)
    .boxed()
}

fn nullable(values: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 5 => values].boxed()
}

/// JSON with the chart response's shape, every part of which may be absent,
/// of another length or type, or any value.
fn chart_shaped_json() -> impl Strategy<Value = Value> {
    let meta = (
        field(
            "exchangeTimezoneName",
            hostile_string().prop_map(Value::String).boxed(),
        ),
        field("gmtoffset", hostile_number().boxed()),
        field("currency", hostile_string().prop_map(Value::String).boxed()),
        field("symbol", hostile_string().prop_map(Value::String).boxed()),
        field("regularMarketPrice", hostile_number().boxed()),
        field("longName", hostile_string().prop_map(Value::String).boxed()),
    )
        .prop_map(|(a, b, c, d, e, f)| object(vec![a, b, c, d, e, f]));
    let bars = (0usize..8).prop_flat_map(move |n| {
        let price = nullable(
            prop_oneof![
                3 => (0.0f64..1e6).prop_map(float),
                1 => hostile_number(),
            ]
            .boxed(),
        );
        let quote = (
            field("open", series_of(price.clone(), n)),
            field("close", series_of(price.clone(), n)),
            field(
                "volume",
                series_of(
                    nullable(
                        prop_oneof![
                            20 => (0i64..1 << 40).prop_map(Value::from),
                            1 => hostile_number(),
                        ]
                        .boxed(),
                    ),
                    n,
                ),
            ),
        )
            .prop_map(|(a, b, c)| object(vec![a, b, c]));
        let adj = field("adjclose", series_of(price, n))
            .prop_map(|a| Value::Array(vec![object(vec![a])]));
        (
            field(
                "timestamp",
                vec(
                    prop_oneof![
                        // Mostly real-looking, so that bars come out.
                        6 => (1_500_000_000i64..1_500_000_000 + 16 * 86_400).prop_map(Value::from),
                        1 => hostile_timestamp().prop_map(Value::from),
                    ],
                    n..=n,
                )
                .prop_map(Value::Array)
                .boxed(),
            ),
            field(
                "indicators",
                (
                    field("quote", quote.prop_map(|q| Value::Array(vec![q])).boxed()),
                    field("adjclose", adj.boxed()),
                )
                    .prop_map(|(q, a)| object(vec![q, a]))
                    .boxed(),
            ),
        )
    });
    (field("meta", meta.boxed()), bars, any::<bool>()).prop_map(|(meta, (ts, ind), error)| {
        let result = object(vec![meta, ts, ind]);
        let mut chart = Map::new();
        chart.insert("result".into(), Value::Array(vec![result]));
        if error {
            chart.insert("error".into(), Value::Null);
        }
        let mut root = Map::new();
        root.insert("chart".into(), Value::Object(chart));
        Value::Object(root)
    })
}

#[path = "fuzz_chart/mutations.rs"]
mod mutations;
use mutations::*;

// ---------------------------------------------------------------- the tests

#[test]
fn every_fixture_satisfies_the_property_unmutated() {
    for (name, value) in FIXTURES.iter() {
        let body = serde_json::to_vec(value).unwrap();
        if let Err(e) = check_body(&body) {
            panic!("{name}: {e}");
        }
    }
}

/// The smallest inputs the properties found panicking (issue 8 item 10): a
/// timestamp at an end of chrono's range, read in a zone whose offset takes
/// the local time past it (New York's LMT of 1883 is UTC-4:56:02). A bar
/// there must be an error (`BadTimestamp`), not a panic of the parser.
#[test]
fn timestamps_at_the_ends_of_chrono_range_are_errors_not_panics() {
    let [min, max] = *TIMESTAMP_BOUNDS;
    let mut panicked = Vec::new();
    for (meta, ts) in [
        (r#"{"exchangeTimezoneName":"America/New_York"}"#, min),
        (r#"{"exchangeTimezoneName":"Asia/Tokyo"}"#, max),
        (r#"{"gmtoffset":-3600}"#, min),
        (r#"{"gmtoffset":3600}"#, max),
        (r#"{"gmtoffset":0}"#, min),
        (r#"{"gmtoffset":0}"#, max),
    ] {
        let body = format!(
            r#"{{"chart":{{"result":[{{"meta":{meta},"timestamp":[{ts}],"indicators":{{"quote":[{{"close":[1.0]}}]}}}}]}}}}"#
        );
        match std::panic::catch_unwind(|| check_body(body.as_bytes())) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{body}: {e}"),
            Err(_) => panicked.push(body),
        }
    }
    assert!(
        panicked.is_empty(),
        "parse_chart panicked on: {panicked:#?}"
    );
}

proptest! {
    #![proptest_config(fuzz_config(101))]

    #[test]
    fn arbitrary_bytes_never_panic(
        body in prop_oneof![
            vec(any::<u8>(), 0..64),
            // Bytes after a plausible start reach deeper into the parser.
            vec(any::<u8>(), 0..48).prop_map(|b| [&b"{\"chart\":{\"result\":[{"[..], &b].concat()),
        ],
        status in any::<u16>(),
    ) {
        check_body(&body)?;
        if !(200..=299).contains(&status) {
            check_status(status, &body)?;
        }
    }
}

proptest! {
    #![proptest_config(fuzz_config(102))]

    #[test]
    fn arbitrary_json_never_panics(value in prop_oneof![
        3 => chart_shaped_json(),
        1 => any_json(),
    ]) {
        let body = serde_json::to_vec(&value).unwrap();
        check_body(&body)?;
        check_status(400, &body)?;
    }
}

proptest! {
    #![proptest_config(fuzz_config(103))]

    #[test]
    fn mutated_recorded_responses_never_panic(
        (fixture, mutations, text) in mutated_fixture(),
        status in prop::sample::select(vec![200u16, 400, 404, 429, 500, 503, 302]),
    ) {
        let body = mutate(fixture, &mutations, &text);
        check_body(&body)?;
        if !(200..=299).contains(&status) {
            check_status(status, &body)?;
        }
    }
}
