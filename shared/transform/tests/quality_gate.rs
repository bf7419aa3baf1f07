//! The data-quality gate in the transform stage, on a real recorded response
//! poisoned with bad bars: the bad bars are quarantined with their reasons
//! and kept out of the curated rows and the indicators, the good ones are
//! curated as if the bad ones had never come, soft findings and the
//! response's dividends are recorded, and a redelivery changes nothing.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::config::ParquetCompression;
use mdp_core::messages::TransformRequest;
use mdp_core::quality::{ActionKind, HardRule, SoftRule};
use mdp_core::{Lake, LocalStore, Ticker};
use mdp_lake::{read_corporate_actions, read_history, read_quality_findings, read_quarantine};
use mdp_transform::transform_stage;
use serde_json::{Value, json};

const MSFT: &str = "msft_1d_range_2021-02-01_2022-01-28_dividends.json";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/yahoo/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn msft() -> Ticker {
    Ticker::parse("MSFT").unwrap()
}

async fn transform(
    lake: &Lake,
    body: &Value,
    raw_name: &str,
    now: DateTime<Utc>,
) -> mdp_transform::TransformOutcome {
    let raw_key = format!("raw/yahoo/chart/ticker=MSFT/{raw_name}.json");
    lake.store()
        .put(&raw_key, serde_json::to_vec(body).unwrap())
        .await
        .unwrap();
    let request = TransformRequest {
        v: 1,
        run_id: "t".into(),
        ticker: msft(),
        raw_key,
        start: d("2021-02-01"),
        end: d("2022-01-28"),
    };
    transform_stage(lake, &request, ParquetCompression::Snappy, now)
        .await
        .unwrap()
}

fn set(body: &mut Value, array: &str, i: usize, value: Value) {
    body["chart"]["result"][0]["indicators"]["quote"][0][array][i] = value;
}

fn get(body: &Value, array: &str, i: usize) -> f64 {
    body["chart"]["result"][0]["indicators"]["quote"][0][array][i]
        .as_f64()
        .unwrap()
}

/// Removes bars by index from a response (timestamps and every array).
fn without(body: &Value, drop: &[usize]) -> Value {
    let mut out = body.clone();
    let result = &mut out["chart"]["result"][0];
    let keep = |arr: &Value| {
        Value::Array(
            arr.as_array()
                .unwrap()
                .iter()
                .enumerate()
                .filter(|(i, _)| !drop.contains(i))
                .map(|(_, v)| v.clone())
                .collect(),
        )
    };
    result["timestamp"] = keep(&result["timestamp"]);
    for arr in result["indicators"]["quote"][0]
        .as_object_mut()
        .unwrap()
        .values_mut()
    {
        *arr = keep(arr);
    }
    for arr in result["indicators"]["adjclose"][0]
        .as_object_mut()
        .unwrap()
        .values_mut()
    {
        *arr = keep(arr);
    }
    out
}

#[tokio::test]
async fn a_poisoned_response_quarantines_its_bad_bars_and_curates_the_rest() {
    let clean = fixture(MSFT);
    let mut poisoned = clean.clone();
    let dates: Vec<NaiveDate> = {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        transform(&lake, &clean, "clean", Utc::now()).await;
        read_history(&lake, &msft())
            .await
            .unwrap()
            .iter()
            .map(|r| r.date())
            .collect()
    };
    assert_eq!(dates.len(), 252);
    // A close of -1, a high under the low, a negative volume.
    set(&mut poisoned, "close", 10, json!(-1));
    let low = get(&poisoned, "low", 20);
    set(&mut poisoned, "high", 20, json!(low * 0.5));
    set(&mut poisoned, "volume", 30, json!(-5));
    // A close 100× too large (a cents/dollars mix-up) that is internally consistent.
    for array in ["open", "high", "low", "close"] {
        let v = get(&poisoned, array, 40);
        set(&mut poisoned, array, 40, json!(v * 100.0));
    }

    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let now: DateTime<Utc> = "2022-01-31T22:00:00Z".parse().unwrap();
    let out = transform(&lake, &poisoned, "poisoned", now).await;
    assert_eq!(out.bars_in_range, 249);
    assert_eq!(out.bars_quarantined, 3);

    let quarantine = read_quarantine(&lake, &msft()).await.unwrap();
    let got: Vec<(NaiveDate, Vec<HardRule>)> = quarantine
        .iter()
        .map(|q| (q.bar.date, q.rules.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (dates[10], vec![HardRule::PriceNotPositive]),
            // Under its own low, so under the open and the close too.
            (dates[20], vec![HardRule::HighBelowOpenOrClose]),
            (dates[30], vec![HardRule::NegativeVolume]),
        ]
    );
    assert!(quarantine[0].detail.contains("close -1 is not > 0"));
    assert!(quarantine.iter().all(
        |q| q.raw_key == "raw/yahoo/chart/ticker=MSFT/poisoned.json" && q.quarantined_at == now
    ));
    assert_eq!(quarantine[2].bar.volume, Some(-5));

    // The curated rows are those of the same response without the three bad
    // bars: the quarantined bars count nowhere, indicators included.
    let curated = read_history(&lake, &msft()).await.unwrap();
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = Lake::new(Arc::new(LocalStore::new(reference_dir.path())));
    transform(&reference, &without(&poisoned, &[10, 20, 30]), "clean", now).await;
    let expected = read_history(&reference, &msft()).await.unwrap();
    assert_eq!(curated.len(), 249);
    for (a, b) in curated.iter().zip(&expected) {
        assert!(a.same_values(b), "{}", a.date());
    }
    assert!(
        curated
            .iter()
            .all(|r| ![dates[10], dates[20], dates[30]].contains(&r.date()))
    );

    // The unit jump and its way back are findings; the row stays curated.
    let findings = read_quality_findings(&lake, &msft()).await.unwrap();
    let jumps: Vec<(NaiveDate, SoftRule)> = findings
        .iter()
        .filter(|f| f.rule == SoftRule::UnitJump)
        .map(|f| (f.date, f.rule))
        .collect();
    assert_eq!(
        jumps,
        vec![
            (dates[40], SoftRule::UnitJump),
            (dates[41], SoftRule::UnitJump)
        ]
    );
    // Each quarantined bar leaves a session missing.
    for i in [10, 20, 30] {
        assert!(
            findings
                .iter()
                .any(|f| f.date == dates[i] && f.rule == SoftRule::MissingSession),
            "{}",
            dates[i]
        );
    }

    // The response's four dividends are stored.
    let actions = read_corporate_actions(&lake, &msft()).await.unwrap();
    assert_eq!(actions.len(), 4);
    assert!(
        actions
            .iter()
            .all(|a| a.kind == ActionKind::Dividend && a.amount.unwrap() > 0.5)
    );

    let mark = lake.read_watermark(&msft()).await.unwrap().unwrap();
    assert_eq!(mark.quarantined_bars, 3);
    assert_eq!(mark.quality_findings, findings.len() as u64);

    // The same message again (an SQS redelivery, later): nothing changes,
    // the quarantined bars keep the time they were first quarantined.
    let files = |dir: &std::path::Path| {
        ["quarantine", "quality", "curated"]
            .iter()
            .flat_map(|zone| walk(&dir.join(zone)))
            .collect::<Vec<_>>()
    };
    let before = files(dir.path());
    let later: DateTime<Utc> = "2022-02-01T22:00:00Z".parse().unwrap();
    let again = transform(&lake, &poisoned, "poisoned", later).await;
    assert_eq!(again.rows_written, 0);
    assert_eq!(
        files(dir.path()),
        before,
        "no side file or partition rewritten"
    );
    assert_eq!(read_quarantine(&lake, &msft()).await.unwrap(), quarantine);

    // A later, clean response for the same range: the bars it brings for
    // the quarantined dates are curated; the quarantine keeps its record.
    let out = transform(&lake, &clean, "corrected", later).await;
    assert_eq!(out.bars_quarantined, 0);
    assert_eq!(read_history(&lake, &msft()).await.unwrap().len(), 252);
    assert_eq!(read_quarantine(&lake, &msft()).await.unwrap(), quarantine);
    let findings = read_quality_findings(&lake, &msft()).await.unwrap();
    assert!(
        !findings
            .iter()
            .any(|f| f.rule == SoftRule::UnitJump || f.rule == SoftRule::MissingSession),
        "{findings:?}"
    );
}

/// Every file under `dir` with its bytes, sorted by path.
fn walk(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}
