//! Generated hostile stage messages (issue 8 item 10): arbitrary strings and
//! mutations of valid `FetchRequest`, `TransformRequest` and `LoadRequest`
//! bodies, each decoded as all three types. Property: `decode_message` never
//! panics; an error is permanent (dead-lettered, never retried); a decoded
//! message has version 1 and encodes back to a body that decodes to it.
//!
//! 10,000 cases per property by default (`MDP_FUZZ_CASES` overrides it, e.g.
//! `make fuzz`); a fixed seed (`MDP_FUZZ_SEED=N` or `random` changes it) and
//! no failure persistence, so nothing is written into the repository.

use chrono::NaiveDate;
use mdp_core::StageError;
use mdp_core::dates::FetchMode;
use mdp_core::messages::{
    FetchRequest, LoadRequest, MESSAGE_VERSION, TransformRequest, decode_message,
};
use mdp_core::ticker::Ticker;
use proptest::collection::vec;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

mod fuzz_support;
use fuzz_support::fuzz_config;

// ---------------------------------------------------------------- the property

fn check_as<T>(body: &str) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug + HasVersion,
{
    match decode_message::<T>(body) {
        Ok(msg) => {
            prop_assert_eq!(msg.version(), MESSAGE_VERSION);
            let again = serde_json::to_string(&msg).expect("a message serializes");
            match decode_message::<T>(&again) {
                Ok(back) => prop_assert_eq!(back, msg),
                Err(e) => prop_assert!(false, "{again} does not decode back: {e}"),
            }
        }
        Err(e) => {
            let text = e.to_string();
            let err = StageError::from(e);
            prop_assert!(!err.is_transient(), "transient: {text}");
            prop_assert!(!err.message().trim().is_empty());
        }
    }
    Ok(())
}

fn check(body: &str) -> Result<(), TestCaseError> {
    check_as::<FetchRequest>(body)?;
    check_as::<TransformRequest>(body)?;
    check_as::<LoadRequest>(body)?;
    Ok(())
}

trait HasVersion {
    fn version(&self) -> u32;
}

impl HasVersion for FetchRequest {
    fn version(&self) -> u32 {
        self.v
    }
}

impl HasVersion for TransformRequest {
    fn version(&self) -> u32 {
        self.v
    }
}

impl HasVersion for LoadRequest {
    fn version(&self) -> u32 {
        self.v
    }
}

// ---------------------------------------------------------------- valid messages

fn ticker() -> impl Strategy<Value = Ticker> {
    "[A-Za-z0-9][A-Za-z0-9.^=-]{0,11}".prop_filter_map("a valid ticker", |s| Ticker::parse(&s).ok())
}

fn date() -> impl Strategy<Value = NaiveDate> {
    prop_oneof![
        4 => (0i32..30_000).prop_map(|d| NaiveDate::from_num_days_from_ce_opt(719_163 + d).unwrap()),
        1 => prop::sample::select(vec![NaiveDate::MIN, NaiveDate::MAX]),
    ]
}

fn run_id() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}", "\\PC{0,16}"]
}

fn valid_message() -> impl Strategy<Value = Value> {
    let fetch = (
        run_id(),
        ticker(),
        date(),
        date(),
        prop::sample::select(vec![FetchMode::Backfill, FetchMode::Incremental]),
    )
        .prop_map(|(run_id, ticker, start, end, mode)| {
            serde_json::to_value(FetchRequest {
                v: MESSAGE_VERSION,
                run_id,
                ticker,
                start,
                end,
                mode,
            })
            .unwrap()
        });
    let transform = (run_id(), ticker(), "\\PC{0,40}", date(), date()).prop_map(
        |(run_id, ticker, raw_key, start, end)| {
            serde_json::to_value(TransformRequest {
                v: MESSAGE_VERSION,
                run_id,
                ticker,
                raw_key,
                start,
                end,
            })
            .unwrap()
        },
    );
    let load = (
        run_id(),
        ticker(),
        vec("\\PC{0,24}", 0..4),
        any::<u64>(),
        proptest::option::of(date()),
        proptest::option::of(date()),
    )
        .prop_map(
            |(run_id, ticker, partition_keys, rows, min_date, max_date)| {
                serde_json::to_value(LoadRequest {
                    v: MESSAGE_VERSION,
                    run_id,
                    ticker,
                    partition_keys,
                    rows,
                    min_date,
                    max_date,
                })
                .unwrap()
            },
        );
    prop_oneof![fetch, transform, load]
}

// ---------------------------------------------------------------- mutations

const FIELDS: [&str; 13] = [
    "v",
    "run_id",
    "ticker",
    "start",
    "end",
    "mode",
    "raw_key",
    "partition_keys",
    "rows",
    "min_date",
    "max_date",
    "date",
    "V",
];

fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![0i64, 1, 2, -1]).prop_map(Value::from),
        Just(Value::from(1.0)),
        prop::sample::select(vec![
            "",
            "1",
            "backfill",
            "Backfill",
            "incremental ",
            "2025-01-02",
            "2025-02-30",
            "2025-1-2",
            " 2025-01-02",
            "20250102",
            "+262143-12-31",
            "-0001-01-01",
            "262143-01-01",
            "0000-01-01",
            "MSFT",
            " msft ",
            "^GSPC",
            "BAD TICKER",
            "ABCDEFGHIJKLM",
            "ÄPFEL",
            "\u{0}",
            "\u{feff}MSFT",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((prop::sample::select(FIELDS.to_vec()), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(&'static str, Value),
    Remove(&'static str),
    Retype(&'static str),
    Nest(usize),
    /// The whole message inside another value.
    Wrap(bool),
}

#[derive(Debug, Clone)]
enum TextMutation {
    /// A second `"v"` (or other field) in front: serde_json keeps the last.
    DuplicateKey(&'static str, &'static str),
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, &'static str),
    /// Replace the version number by a token JSON cannot hold exactly.
    Version(&'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let field = prop::sample::select(FIELDS.to_vec());
    prop_oneof![
        4 => (field.clone(), hostile_value()).prop_map(|(f, v)| Mutation::Set(f, v)),
        2 => field.clone().prop_map(Mutation::Remove),
        1 => field.prop_map(Mutation::Retype),
        1 => prop_oneof![1..10usize, 120..140usize, 300..400usize].prop_map(Mutation::Nest),
        1 => any::<bool>().prop_map(Mutation::Wrap),
    ]
}

const TOKENS: [&str; 12] = [
    "1.0",
    "1e0",
    "01",
    "-0",
    "18446744073709551616",
    "4294967297",
    "1e999",
    "NaN",
    "Infinity",
    "true",
    "\"1\"",
    "[1]",
];

fn text_mutation() -> impl Strategy<Value = TextMutation> {
    let token = prop::sample::select(TOKENS.to_vec());
    prop_oneof![
        2 => (prop::sample::select(FIELDS.to_vec()), token.clone())
            .prop_map(|(f, t)| TextMutation::DuplicateKey(f, t)),
        2 => token.prop_map(TextMutation::Version),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| TextMutation::Flip(p, b)),
        1 => any::<usize>().prop_map(TextMutation::Cut),
        1 => (
            any::<usize>(),
            prop::sample::select(vec![
                "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "\u{fffd}", "\u{0}",
            ]),
        )
            .prop_map(|(p, t)| TextMutation::Insert(p, t)),
    ]
}

fn retype(v: Value) -> Value {
    match v {
        Value::Null => Value::Array(vec![]),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::Array(vec![Value::String(s)])),
        Value::Array(a) => a.into_iter().next().unwrap_or(Value::Null),
        Value::Object(o) => Value::Array(o.into_iter().map(|(_, v)| v).collect()),
    }
}

fn apply(msg: Value, m: &Mutation) -> Value {
    match (msg, m) {
        (Value::Object(mut o), Mutation::Set(f, v)) => {
            o.insert(f.to_string(), v.clone());
            Value::Object(o)
        }
        (Value::Object(mut o), Mutation::Remove(f)) => {
            o.remove(*f);
            Value::Object(o)
        }
        (Value::Object(mut o), Mutation::Retype(f)) => {
            if let Some(v) = o.remove(*f) {
                o.insert(f.to_string(), retype(v));
            }
            Value::Object(o)
        }
        (msg, Mutation::Nest(depth)) => {
            // The deep value under a field, so `"v"` is still read first.
            let mut deep = Value::Null;
            for _ in 0..*depth {
                deep = Value::Array(vec![deep]);
            }
            match msg {
                Value::Object(mut o) => {
                    o.insert("partition_keys".into(), deep);
                    Value::Object(o)
                }
                other => other,
            }
        }
        (msg, Mutation::Wrap(as_array)) => {
            if *as_array {
                Value::Array(vec![msg])
            } else {
                let mut o = Map::new();
                o.insert("Body".into(), msg);
                Value::Object(o)
            }
        }
        (msg, _) => msg,
    }
}

fn apply_text(text: &mut String, m: &TextMutation) {
    let mut bytes = std::mem::take(text).into_bytes();
    match m {
        TextMutation::DuplicateKey(field, token) if bytes.first() == Some(&b'{') => {
            let dup = format!("\"{field}\":{token},");
            bytes.splice(1..1, dup.into_bytes());
        }
        TextMutation::Version(token) => {
            let s = String::from_utf8_lossy(&bytes).into_owned();
            if let Some(at) = s.find("\"v\":1") {
                let mut s = s;
                s.replace_range(at + 4..at + 5, token);
                bytes = s.into_bytes();
            }
        }
        TextMutation::Flip(p, b) if !bytes.is_empty() => {
            let p = p % bytes.len();
            bytes[p] ^= b | 1;
        }
        TextMutation::Cut(p) if !bytes.is_empty() => bytes.truncate(p % bytes.len()),
        TextMutation::Insert(p, token) => {
            let p = p % (bytes.len() + 1);
            bytes.splice(p..p, token.bytes());
        }
        _ => {}
    }
    // Bodies are strings (SQS delivers text): a flip that breaks UTF-8 is
    // replaced by U+FFFD, as a lossy reader would.
    *text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}

// ---------------------------------------------------------------- the tests

proptest! {
    #![proptest_config(fuzz_config(200))]

    #[test]
    fn valid_messages_decode_and_round_trip(msg in valid_message()) {
        let body = msg.to_string();
        check(&body)?;
        // Exactly one of the three types reads it.
        let decoded = [
            decode_message::<FetchRequest>(&body).is_ok(),
            decode_message::<TransformRequest>(&body).is_ok(),
            decode_message::<LoadRequest>(&body).is_ok(),
        ];
        prop_assert_eq!(decoded.iter().filter(|ok| **ok).count(), 1, "{}", body);
    }
}

proptest! {
    #![proptest_config(fuzz_config(201))]

    #[test]
    fn arbitrary_strings_never_panic(body in prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        // Text built from JSON's own tokens and the messages' field names.
        vec(prop_oneof![
            prop::sample::select(vec!["{", "}", "[", "]", ",", ":", "\"", "null", "true", "1", "-1", "1e400", "0.5"])
                .prop_map(str::to_string),
            prop::sample::select(FIELDS.to_vec()).prop_map(|f| format!("\"{f}\"")),
        ], 0..24).prop_map(|t| t.concat()),
    ]) {
        check(&body)?;
    }
}

proptest! {
    #![proptest_config(fuzz_config(202))]

    #[test]
    fn mutated_valid_messages_never_panic(
        msg in valid_message(),
        mutations in vec(mutation(), 0..4),
        text in prop_oneof![2 => Just(vec![]), 1 => vec(text_mutation(), 1..3)],
    ) {
        let mut value = msg;
        for m in &mutations {
            value = apply(value, m);
        }
        let mut body = value.to_string();
        for m in &text {
            apply_text(&mut body, m);
        }
        check(&body)?;
    }
}
