//! A checker of EMF documents against the rules of the specification (not
//! our conventions), so the tests of every crate can refuse a document
//! CloudWatch would drop: [`check_emf_document`] and its [`EmfViolation`].

use serde_json::Value;

use super::{CLOUDWATCH_UNITS, MAX_METRICS_PER_DOCUMENT, MAX_VALUES_PER_METRIC};

/// Why a JSON value is not a valid EMF document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid EMF document: {0}")]
pub struct EmfViolation(pub String);

/// Checks `document` against the rules of the EMF specification (not our
/// conventions): the `_aws` metadata with an integer millisecond
/// `Timestamp` and `CloudWatchMetrics` directives, each with a `Namespace`,
/// `Dimensions` (sets of at most 30 keys, each naming a top-level string
/// member) and `Metrics` (1 to 100 definitions with a `Name` naming a
/// top-level number or array of 1 to 100 numbers, and a `Unit` from
/// [`CLOUDWATCH_UNITS`]), no unknown member in those objects.
pub fn check_emf_document(document: &Value) -> Result<(), EmfViolation> {
    let bad = |why: String| Err(EmfViolation(why));
    let Some(root) = document.as_object() else {
        return bad("the document is not a JSON object".into());
    };
    let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
        return bad("no _aws object".into());
    };
    if let Some(key) = aws
        .keys()
        .find(|k| !["Timestamp", "CloudWatchMetrics"].contains(&k.as_str()))
    {
        return bad(format!("_aws has an unknown member {key}"));
    }
    match aws.get("Timestamp").and_then(Value::as_i64) {
        // Milliseconds: after 2001-09-09 (a value in seconds is far smaller).
        Some(ms) if ms >= 1_000_000_000_000 => {}
        other => {
            return bad(format!(
                "_aws.Timestamp is not epoch milliseconds: {other:?}"
            ));
        }
    }
    let Some(directives) = aws.get("CloudWatchMetrics").and_then(Value::as_array) else {
        return bad("_aws.CloudWatchMetrics is not an array".into());
    };
    if directives.is_empty() {
        return bad("_aws.CloudWatchMetrics is empty".into());
    }
    for directive in directives {
        let Some(directive) = directive.as_object() else {
            return bad("a metric directive is not an object".into());
        };
        if let Some(key) = directive
            .keys()
            .find(|k| !["Namespace", "Dimensions", "Metrics"].contains(&k.as_str()))
        {
            return bad(format!("a metric directive has an unknown member {key}"));
        }
        match directive.get("Namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns.chars().count() <= 255 => {}
            other => return bad(format!("bad Namespace {other:?}")),
        }
        let Some(sets) = directive.get("Dimensions").and_then(Value::as_array) else {
            return bad("Dimensions is not an array".into());
        };
        let mut dimension_keys = Vec::new();
        for set in sets {
            let Some(set) = set.as_array() else {
                return bad("a dimension set is not an array".into());
            };
            if set.len() > 30 {
                return bad(format!(
                    "a dimension set has {} keys (30 at most)",
                    set.len()
                ));
            }
            for key in set {
                let Some(key) = key.as_str() else {
                    return bad("a dimension key is not a string".into());
                };
                match root.get(key) {
                    Some(Value::String(v)) if !v.is_empty() && v.chars().count() <= 1024 => {}
                    other => {
                        return bad(format!("dimension {key} has no string value: {other:?}"));
                    }
                }
                dimension_keys.push(key);
            }
        }
        let Some(metrics) = directive.get("Metrics").and_then(Value::as_array) else {
            return bad("Metrics is not an array".into());
        };
        if metrics.is_empty() || metrics.len() > MAX_METRICS_PER_DOCUMENT {
            return bad(format!("{} metric definitions (1 to 100)", metrics.len()));
        }
        let mut names = Vec::new();
        for definition in metrics {
            let Some(definition) = definition.as_object() else {
                return bad("a metric definition is not an object".into());
            };
            if let Some(key) = definition
                .keys()
                .find(|k| !["Name", "Unit", "StorageResolution"].contains(&k.as_str()))
            {
                return bad(format!("a metric definition has an unknown member {key}"));
            }
            let Some(name) = definition.get("Name").and_then(Value::as_str) else {
                return bad("a metric definition has no Name".into());
            };
            if name.is_empty() || name.chars().count() > 255 {
                return bad(format!("bad metric name {name:?}"));
            }
            if names.contains(&name) {
                return bad(format!("metric {name} defined twice"));
            }
            if dimension_keys.contains(&name) {
                return bad(format!("metric {name} is also a dimension"));
            }
            names.push(name);
            match definition.get("Unit") {
                None => {}
                Some(Value::String(u)) if CLOUDWATCH_UNITS.contains(&u.as_str()) => {}
                Some(other) => return bad(format!("metric {name}: bad Unit {other}")),
            }
            match definition.get("StorageResolution") {
                None => {}
                Some(r) if r.as_i64() == Some(1) || r.as_i64() == Some(60) => {}
                Some(other) => return bad(format!("metric {name}: bad StorageResolution {other}")),
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if !values.is_empty()
                        && values.len() <= MAX_VALUES_PER_METRIC
                        && values.iter().all(Value::is_number) => {}
                other => {
                    return bad(format!(
                        "metric {name} has no number or array of 1 to 100 numbers: {other:?}"
                    ));
                }
            }
        }
    }
    Ok(())
}
