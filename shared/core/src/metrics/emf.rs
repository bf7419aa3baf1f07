//! The EMF document writer: a stage's recorded values as few documents as
//! the specification's limits allow (at most `MAX_METRICS_PER_DOCUMENT`
//! metrics per document, `MAX_VALUES_PER_METRIC` values per metric), with
//! the namespace, the one `Stage` dimension and the top-level properties.
//! `Metrics::documents` feeds it; apart so the collector stays readable.

use serde_json::{Map, Number, Value};

use super::{MAX_VALUES_PER_METRIC, NAMESPACE, STAGE_DIMENSION};

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One metric's values for [`emf_documents`].
pub(super) struct Entry<'a> {
    pub(super) name: &'a str,
    pub(super) unit: &'a str,
    pub(super) values: &'a [f64],
}

fn number(v: f64) -> Value {
    // Whole numbers as integers (counts read as counts); others as floats.
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::Number(Number::from(v as i64))
    } else {
        Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

/// The EMF documents of one stage's entries: document `i` holds the `i`-th
/// chunk of [`MAX_VALUES_PER_METRIC`] values of every metric that has one,
/// in groups of at most `max_metrics` metrics.
pub(super) fn emf_documents(
    timestamp_ms: i64,
    stage: &str,
    entries: &[Entry<'_>],
    properties: &[(String, String)],
    max_metrics: usize,
) -> Vec<Value> {
    let rounds = entries
        .iter()
        .map(|e| e.values.len().div_ceil(MAX_VALUES_PER_METRIC))
        .max()
        .unwrap_or(0);
    let mut documents = Vec::new();
    for round in 0..rounds {
        let chunk_of = |e: &Entry<'_>| {
            e.values
                .chunks(MAX_VALUES_PER_METRIC)
                .nth(round)
                .map(<[f64]>::to_vec)
        };
        let in_round: Vec<(&Entry<'_>, Vec<f64>)> = entries
            .iter()
            .filter_map(|e| chunk_of(e).map(|chunk| (e, chunk)))
            .collect();
        for group in in_round.chunks(max_metrics.max(1)) {
            let mut root = Map::new();
            for (key, value) in properties {
                root.insert(key.clone(), Value::String(value.clone()));
            }
            root.insert(STAGE_DIMENSION.into(), Value::String(stage.into()));
            let mut definitions = Vec::with_capacity(group.len());
            for (entry, chunk) in group {
                definitions.push(serde_json::json!({"Name": entry.name, "Unit": entry.unit}));
                let value = match chunk.as_slice() {
                    [one] => number(*one),
                    many => Value::Array(many.iter().map(|v| number(*v)).collect()),
                };
                root.insert(entry.name.to_string(), value);
            }
            root.insert(
                "_aws".into(),
                serde_json::json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [[STAGE_DIMENSION]],
                        "Metrics": definitions,
                    }],
                }),
            );
            documents.push(Value::Object(root));
        }
    }
    documents
}
