//! Unit tests of the metrics module: the names and units, the documents a
//! flush writes and their limits, the specification checker and a function's
//! cold start. Here rather than in tests/ because they reach the private
//! document writer (`emf_documents`, `Entry`, `now_ms`).

use super::*;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// Our conventions on top of the specification: the namespace, the one
/// `Stage` dimension with a known value, no ticker dimension, the names
/// and units of [`Metric`].
fn check_ours(document: &Value) {
    check_emf_document(document).unwrap();
    let directives = document["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(directives.len(), 1);
    let directive = &directives[0];
    assert_eq!(directive["Namespace"], NAMESPACE);
    assert_eq!(directive["Dimensions"], serde_json::json!([["Stage"]]));
    let stage = document["Stage"].as_str().unwrap();
    assert!(Stage::ALL.iter().any(|s| s.as_str() == stage), "{stage}");
    let text = directive["Dimensions"].to_string().to_lowercase();
    assert!(!text.contains("ticker") && !text.contains("run_id"));
    for definition in directive["Metrics"].as_array().unwrap() {
        let name = definition["Name"].as_str().unwrap();
        let metric = Metric::ALL
            .iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("unknown metric {name}"));
        assert_eq!(definition["Unit"], metric.unit().as_str());
    }
}

fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_metric_names_and_units_are_exactly_those_of_the_dashboard_and_alarms() {
    let expected = [
        ("StageDuration", "Milliseconds"),
        ("RecordsHandled", "Count"),
        ("TransientFailures", "Count"),
        ("PermanentFailures", "Count"),
        ("DeadLettered", "Count"),
        ("RowsFetched", "Count"),
        ("RowsWritten", "Count"),
        ("BarsQuarantined", "Count"),
        ("QualityFindings", "Count"),
        ("RowsLoaded", "Count"),
        ("ChartApiLatency", "Milliseconds"),
        ("ChartApiRetries", "Count"),
        ("ChartApi429", "Count"),
        ("ColdStart", "Count"),
        ("TickersPlanned", "Count"),
        ("TickersCaughtUp", "Count"),
        ("TickersFailed", "Count"),
        ("RunDuration", "Milliseconds"),
        ("StaleTickers", "Count"),
    ];
    let ours: Vec<(&str, &str)> = Metric::ALL
        .iter()
        .map(|m| (m.name(), m.unit().as_str()))
        .collect();
    assert_eq!(ours, expected);
    for (_, unit) in expected {
        assert!(CLOUDWATCH_UNITS.contains(&unit));
    }
    let stages: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(stages, ["validate", "fetch", "transform", "load", "run"]);
    assert_eq!(NAMESPACE, "MarketDataPipeline");
}

/// The dashboard and alarms of template.yaml name only metrics and
/// stages this module writes (a renamed metric would leave a graph empty
/// and an alarm without data).
#[test]
fn template_yaml_uses_only_the_metrics_and_stages_written_here() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let template = std::fs::read_to_string(path).unwrap();
    let after = |marker: &str| -> Vec<String> {
        template
            .split(marker)
            .skip(1)
            .map(|rest| {
                rest.split(|c: char| !c.is_ascii_alphanumeric())
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    // Dashboard widgets: ["MarketDataPipeline", "Name", "Stage", "fetch", …].
    let mut names = after("\"MarketDataPipeline\", \"");
    // Alarms: `Namespace: MarketDataPipeline` then `MetricName: Name`.
    let lines: Vec<&str> = template.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "Namespace: MarketDataPipeline" {
            let name = lines[i + 1..]
                .iter()
                .take(3)
                .find_map(|l| l.trim().strip_prefix("MetricName:"))
                .unwrap_or_else(|| panic!("an alarm without MetricName at line {}", i + 1));
            names.push(name.trim().to_string());
        }
    }
    assert!(!names.is_empty(), "template.yaml names no metric of ours");
    for name in &names {
        assert!(
            Metric::ALL.iter().any(|m| m.name() == name),
            "template.yaml uses {name}, which no code writes"
        );
    }
    for stage in after("\"Stage\", \"") {
        assert!(
            Stage::ALL.iter().any(|s| s.as_str() == stage),
            "template.yaml uses Stage={stage}"
        );
    }
}

#[test]
fn a_flush_writes_one_valid_document_per_line_per_stage() {
    let m = Metrics::new();
    m.count(Stage::Fetch, Metric::RecordsHandled, 1);
    m.count(Stage::Fetch, Metric::RecordsHandled, 2);
    m.count(Stage::Fetch, Metric::TransientFailures, 0);
    m.count(Stage::Fetch, Metric::RowsFetched, 233);
    m.time(
        Stage::Fetch,
        Metric::StageDuration,
        Duration::from_millis(12),
    );
    m.time(
        Stage::Fetch,
        Metric::StageDuration,
        Duration::from_micros(3_500),
    );
    m.time(
        Stage::Fetch,
        Metric::ChartApiLatency,
        Duration::from_millis(7),
    );
    m.count(Stage::Validate, Metric::TickersPlanned, 3);
    m.property("run_id", "20260101T000000Z-abcd");
    m.property("ticker", "MSFT");
    m.property("ticker", "NVDA");
    m.property("ticker", "MSFT");
    m.property("request_id", "req-1");
    // Would collide with the document's own members: ignored.
    m.property("Stage", "nope");
    m.property("RowsFetched", "nope");
    m.property("_aws", "nope");

    let mut out = Vec::new();
    assert_eq!(m.flush(&mut out).unwrap(), 2);
    assert!(out.ends_with(b"\n"));
    let documents = parse_lines(&out);
    assert_eq!(documents.len(), 2);
    for document in &documents {
        check_ours(document);
        // Properties for Logs Insights, top level, never dimensions.
        assert_eq!(document["run_id"], "20260101T000000Z-abcd");
        assert_eq!(document["ticker"], "MSFT,NVDA");
        assert_eq!(document["request_id"], "req-1");
        let ts = document["_aws"]["Timestamp"].as_i64().unwrap();
        assert!((now_ms() - ts).abs() < 60_000, "{ts}");
    }
    let validate = &documents[0];
    assert_eq!(validate["Stage"], "validate");
    assert_eq!(validate["TickersPlanned"], 3);
    let fetch = &documents[1];
    assert_eq!(fetch["Stage"], "fetch");
    assert_eq!(fetch["RecordsHandled"], 3, "counters are summed");
    assert_eq!(fetch["TransientFailures"], 0, "a zero counter is written");
    assert_eq!(fetch["RowsFetched"], 233);
    assert_eq!(fetch["StageDuration"], serde_json::json!([12, 3.5]));
    assert_eq!(fetch["ChartApiLatency"], 7, "a single value as a number");
    let declared: Vec<&str> = fetch["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        declared,
        [
            "StageDuration",
            "RecordsHandled",
            "TransientFailures",
            "RowsFetched",
            "ChartApiLatency"
        ]
    );

    // The flush forgot everything: nothing more to write.
    assert!(m.is_empty());
    let mut again = Vec::new();
    assert_eq!(m.flush(&mut again).unwrap(), 0);
    assert!(again.is_empty());
}

#[test]
fn more_than_100_values_are_split_across_documents() {
    let m = Metrics::new();
    for i in 0..250 {
        m.record(Stage::Run, Metric::StageDuration, i as f64 + 0.5);
    }
    m.count(Stage::Run, Metric::TickersPlanned, 250);
    m.time(Stage::Run, Metric::RunDuration, Duration::from_secs(2));
    let documents = m.documents(T0);
    assert_eq!(documents.len(), 3);
    let mut seen = Vec::new();
    for (i, document) in documents.iter().enumerate() {
        check_ours(document);
        assert_eq!(document["_aws"]["Timestamp"], T0);
        let values = document["StageDuration"].as_array().unwrap();
        assert_eq!(values.len(), if i < 2 { 100 } else { 50 });
        seen.extend(values.iter().map(|v| v.as_f64().unwrap()));
        // Counters and single values once, in the first document.
        assert_eq!(document.get("TickersPlanned").is_some(), i == 0);
        assert_eq!(document.get("RunDuration").is_some(), i == 0);
    }
    let expected: Vec<f64> = (0..250).map(|i| i as f64 + 0.5).collect();
    assert_eq!(seen, expected, "every value once, in order");
    assert_eq!(m.values(Stage::Run, Metric::StageDuration).len(), 250);
}

#[test]
fn more_than_100_metrics_are_split_across_documents() {
    let names: Vec<String> = (0..230).map(|i| format!("M{i}")).collect();
    let values: Vec<Vec<f64>> = (0..230).map(|i| vec![i as f64]).collect();
    let entries: Vec<Entry<'_>> = names
        .iter()
        .zip(&values)
        .map(|(name, values)| Entry {
            name,
            unit: "Count",
            values,
        })
        .collect();
    let documents = emf_documents(T0, "load", &entries, &[], MAX_METRICS_PER_DOCUMENT);
    let sizes: Vec<usize> = documents
        .iter()
        .map(|d| {
            check_emf_document(d).unwrap();
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes, [100, 100, 30]);
    let mut written: Vec<String> = documents
        .iter()
        .flat_map(|d| {
            d.as_object()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with('M'))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    written.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(written, expected);
}

#[test]
fn the_checker_refuses_what_the_specification_forbids() {
    let good = serde_json::json!({
        "_aws": {"Timestamp": T0, "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": [["Stage"]],
            "Metrics": [{"Name": "RowsLoaded", "Unit": "Count"}]}]},
        "Stage": "load", "RowsLoaded": 5
    });
    check_emf_document(&good).unwrap();
    let broken = |change: &dyn Fn(&mut Value)| {
        let mut doc = good.clone();
        change(&mut doc);
        check_emf_document(&doc).unwrap_err()
    };
    broken(&|d| {
        d.as_object_mut().unwrap().remove("_aws");
    });
    broken(&|d| d["_aws"]["Timestamp"] = serde_json::json!(T0 / 1000));
    broken(&|d| d["_aws"]["Timestamp"] = serde_json::json!("now"));
    broken(&|d| d["_aws"]["CloudWatchMetrics"] = serde_json::json!([]));
    broken(&|d| {
        d["_aws"]["CloudWatchMetrics"][0]
            .as_object_mut()
            .unwrap()
            .remove("Namespace");
    });
    broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = serde_json::json!(["Stage"]));
    broken(&|d| {
        d.as_object_mut().unwrap().remove("Stage");
    });
    broken(&|d| d["Stage"] = serde_json::json!(3));
    broken(&|d| {
        d.as_object_mut().unwrap().remove("RowsLoaded");
    });
    broken(&|d| d["RowsLoaded"] = serde_json::json!("5"));
    broken(&|d| d["RowsLoaded"] = serde_json::json!([]));
    broken(&|d| d["RowsLoaded"] = serde_json::json!(vec![1; 101]));
    broken(&|d| d["RowsLoaded"] = serde_json::json!([1, "2"]));
    broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Rows".into());
    broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Colour"] = "red".into());
    broken(&|d| {
        d["_aws"]["CloudWatchMetrics"][0]["Metrics"] =
            serde_json::json!(vec![serde_json::json!({"Name": "RowsLoaded"}); 101]);
    });
    broken(&|d| {
        d["_aws"]["CloudWatchMetrics"][0]["Metrics"] =
            serde_json::json!([{"Name": "RowsLoaded"}, {"Name": "RowsLoaded"}]);
    });
    broken(&|d| {
        d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = serde_json::json!([["RowsLoaded"]])
    });
}

#[test]
fn values_json_cannot_hold_are_dropped_and_summaries_aggregate() {
    let m = Metrics::new();
    m.record(Stage::Load, Metric::StageDuration, f64::NAN);
    m.record(Stage::Load, Metric::StageDuration, f64::INFINITY);
    assert!(m.is_empty());
    m.record(Stage::Load, Metric::StageDuration, 4.0);
    m.record(Stage::Load, Metric::StageDuration, 1.0);
    m.count(Stage::Load, Metric::RowsLoaded, 10);
    m.count(Stage::Load, Metric::RowsLoaded, 5);
    assert_eq!(m.total(Stage::Load, Metric::RowsLoaded), 15.0);
    assert_eq!(m.total(Stage::Fetch, Metric::RowsFetched), 0.0);
    assert_eq!(
        m.summary(),
        [
            MetricSummary {
                stage: Stage::Load,
                metric: Metric::StageDuration,
                samples: 2,
                sum: 5.0,
                min: 1.0,
                max: 4.0,
            },
            MetricSummary {
                stage: Stage::Load,
                metric: Metric::RowsLoaded,
                samples: 2,
                sum: 15.0,
                min: 15.0,
                max: 15.0,
            },
        ]
    );
    // write_emf keeps the values (mdp run may print them and read them).
    let mut out = Vec::new();
    assert_eq!(m.write_emf(&mut out).unwrap(), 1);
    assert_eq!(m.total(Stage::Load, Metric::RowsLoaded), 15.0);
}

#[test]
fn handles_share_one_collector_across_threads() {
    let m = Metrics::new();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let m = m.clone();
            s.spawn(move || {
                for _ in 0..1000 {
                    m.count(Stage::Fetch, Metric::RecordsHandled, 1);
                }
            });
        }
    });
    assert_eq!(m.total(Stage::Fetch, Metric::RecordsHandled), 4000.0);
}

#[tokio::test]
async fn a_function_counts_its_cold_start_once_and_flushes_after_each_invocation() {
    let function = FunctionMetrics::new(Stage::Transform);
    let mut out = Vec::new();
    for request in ["req-1", "req-2"] {
        let answer = function
            .invocation(
                request,
                async {
                    function
                        .metrics()
                        .count(Stage::Transform, Metric::RowsWritten, 7);
                    42
                },
                &mut out,
            )
            .await;
        assert_eq!(answer, 42);
    }
    let documents = parse_lines(&out);
    assert_eq!(documents.len(), 2);
    for (document, (request, cold)) in documents.iter().zip([("req-1", 1), ("req-2", 0)]) {
        check_ours(document);
        assert_eq!(document["Stage"], "transform");
        assert_eq!(document["request_id"], request);
        assert_eq!(document["ColdStart"], cold);
        assert_eq!(document["RowsWritten"], 7, "each invocation its own values");
    }
}
