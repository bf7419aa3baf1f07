//! Logging for every binary: to stderr (stdout is for results, and for the
//! functions' EMF metrics), human-readable or one JSON object per line.
//!
//! Format and level, first match wins ([`log_settings`]):
//! - Lambda's own log controls, set by Lambda from the function's logging
//!   configuration: `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`) and
//!   `AWS_LAMBDA_LOG_LEVEL` (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`,
//!   `FATAL`; FATAL logs errors, tracing has no level above);
//! - `MDP_LOG_FORMAT` (`json` or `text`) and `RUST_LOG` (any `EnvFilter`
//!   directives);
//! - JSON for the functions (CloudWatch), text for `mdp`; level `info`.
//!
//! A JSON line carries `timestamp` (RFC 3339), `level` (which Lambda's
//! log-level filtering reads), `target`, the event's fields (`message`
//! included) and, flattened to the top level, the fields of every span it
//! is in: in a function, `stage` and `request_id` ([`invocation_span`]),
//! `message_id` ([`record_span`]), `run_id` and `ticker` once the message is
//! decoded ([`note_message`]). Logs Insights reads them as plain fields.

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Empty, Field, Visit};
use tracing::{Event, Level, Span, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::metrics::Stage;
use crate::ticker::Ticker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, span fields flattened.
    Json,
    /// Human-readable.
    Text,
}

/// How a process logs: decided once at start from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `EnvFilter` directives (`info`, `mdp_chart=debug,warn`…).
    pub filter: String,
}

/// The `EnvFilter` level of an `AWS_LAMBDA_LOG_LEVEL` value (any case);
/// `None` for a value Lambda does not define.
pub fn lambda_log_level(value: &str) -> Option<&'static str> {
    Some(match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => return None,
    })
}

/// The format and level from the variables `var` reads (the environment in
/// [`init_logging`]); see the module documentation for the order. A value
/// that is not one of those listed is ignored (the next source decides).
pub fn log_settings(var: impl Fn(&str) -> Option<String>, json_by_default: bool) -> LogSettings {
    let format_of = |name: &str| match var(name) {
        Some(v) if v.trim().eq_ignore_ascii_case("json") => Some(LogFormat::Json),
        Some(v) if v.trim().eq_ignore_ascii_case("text") => Some(LogFormat::Text),
        _ => None,
    };
    let format = format_of("AWS_LAMBDA_LOG_FORMAT")
        .or_else(|| format_of("MDP_LOG_FORMAT"))
        .unwrap_or(if json_by_default {
            LogFormat::Json
        } else {
            LogFormat::Text
        });
    let filter = var("AWS_LAMBDA_LOG_LEVEL")
        .as_deref()
        .and_then(lambda_log_level)
        .map(str::to_string)
        .or_else(|| var("RUST_LOG").filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "info".to_string());
    LogSettings { format, filter }
}

/// Installs the process's subscriber, writing to stderr (a second call, as
/// in tests, keeps the first).
pub fn init_logging(json_by_default: bool) {
    let settings = log_settings(|name| std::env::var(name).ok(), json_by_default);
    let ansi = settings.format == LogFormat::Text && std::io::stderr().is_terminal();
    let _ = tracing::subscriber::set_global_default(subscriber(&settings, std::io::stderr, ansi));
}

/// The subscriber of `settings`, writing to `writer` (tests capture it).
pub fn subscriber<W>(
    settings: &LogSettings,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match settings.format {
        LogFormat::Json => Box::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(FlatJson)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.with_ansi(ansi).with_target(false).finish()),
    }
}

// The spans below are at ERROR level so that they exist whenever any line
// is logged: a span below the configured level is disabled, and the lines
// inside would lose its fields.

/// The span of one function invocation: `stage` and Lambda's `request_id`
/// (and `run_id` once known, for validate: [`note_run`]).
pub fn invocation_span(stage: Stage, request_id: &str) -> Span {
    tracing::error_span!(
        "invocation",
        stage = stage.as_str(),
        request_id,
        run_id = Empty
    )
}

/// The span of one SQS record; `run_id` and `ticker` are filled by the
/// handler once the message is decoded ([`note_message`]).
pub fn record_span(message_id: &str) -> Span {
    tracing::error_span!("record", message_id, run_id = Empty, ticker = Empty)
}

/// Puts the decoded message's run id and ticker on the current span (the
/// record's, inside a handler): every later line of the record carries them.
pub fn note_message(run_id: &str, ticker: &Ticker) {
    let span = Span::current();
    span.record("run_id", run_id);
    span.record("ticker", ticker.as_str());
}

/// Puts the run id on the current span (the invocation's, in validate).
pub fn note_run(run_id: &str) {
    Span::current().record("run_id", run_id);
}

/// A JSON line with the fields of every enclosing span at the top level
/// (tracing-subscriber's own JSON format nests them under `span`/`spans`,
/// which Logs Insights reads as `spans.0.ticker`). Inner spans and the
/// event's own fields win over outer ones; `timestamp`, `level` and
/// `target` over everything.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // JsonFields keeps a span's fields as a JSON object.
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str(&fields.fields)
                {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        let meta = event.metadata();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), level_name(*meta.level()).into());
        line.insert("target".into(), meta.target().into());
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The level as Lambda's log-level filtering reads it.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERROR",
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_string(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, crate::error::chain(value).into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::*;

    fn settings(vars: &[(&str, &str)], json_by_default: bool) -> LogSettings {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        log_settings(|name| vars.get(name).cloned(), json_by_default)
    }

    #[test]
    fn lambda_log_levels_map_to_tracing_levels() {
        for (lambda, ours) in [
            ("TRACE", Some("trace")),
            ("DEBUG", Some("debug")),
            ("INFO", Some("info")),
            ("WARN", Some("warn")),
            ("ERROR", Some("error")),
            ("FATAL", Some("error")),
            ("debug", Some("debug")),
            (" Warn ", Some("warn")),
            ("WARNING", None),
            ("", None),
            ("verbose", None),
        ] {
            assert_eq!(lambda_log_level(lambda), ours, "{lambda:?}");
        }
    }

    /// The variables set, the binary's default (JSON?), the expected format and filter.
    type Case = (
        &'static [(&'static str, &'static str)],
        bool,
        LogFormat,
        &'static str,
    );

    #[test]
    fn lambda_log_controls_win_and_the_older_variables_still_work_without_them() {
        use LogFormat::{Json, Text};
        let cases: &[Case] = &[
            // Nothing set: the binary's default, info.
            (&[], true, Json, "info"),
            (&[], false, Text, "info"),
            // The older variables.
            (
                &[
                    ("MDP_LOG_FORMAT", "text"),
                    ("RUST_LOG", "mdp_chart=debug,warn"),
                ],
                true,
                Text,
                "mdp_chart=debug,warn",
            ),
            (&[("MDP_LOG_FORMAT", "JSON")], false, Json, "info"),
            (&[("RUST_LOG", "  ")], true, Json, "info"),
            // Lambda's controls win over them.
            (
                &[
                    ("AWS_LAMBDA_LOG_FORMAT", "Text"),
                    ("MDP_LOG_FORMAT", "json"),
                    ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
                    ("RUST_LOG", "warn"),
                ],
                true,
                Text,
                "debug",
            ),
            (
                &[
                    ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
                    ("MDP_LOG_FORMAT", "text"),
                ],
                false,
                Json,
                "info",
            ),
            (
                &[("AWS_LAMBDA_LOG_LEVEL", "FATAL"), ("RUST_LOG", "trace")],
                true,
                Json,
                "error",
            ),
            (&[("AWS_LAMBDA_LOG_LEVEL", "TRACE")], true, Json, "trace"),
            // A value Lambda does not define: the next source decides.
            (
                &[
                    ("AWS_LAMBDA_LOG_FORMAT", "yaml"),
                    ("MDP_LOG_FORMAT", "text"),
                ],
                true,
                Text,
                "info",
            ),
            (
                &[("AWS_LAMBDA_LOG_LEVEL", "LOUD"), ("RUST_LOG", "warn")],
                true,
                Json,
                "warn",
            ),
        ];
        for (vars, json_by_default, format, filter) in cases {
            assert_eq!(
                settings(vars, *json_by_default),
                LogSettings {
                    format: *format,
                    filter: filter.to_string()
                },
                "{vars:?}"
            );
        }
    }

    /// A writer the tests read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    #[test]
    fn json_lines_carry_the_fields_of_their_spans_at_the_top_level() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = subscriber(
            &LogSettings {
                format: LogFormat::Json,
                filter: "warn".into(),
            },
            move || writer.clone(),
            false,
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("below the level: not written");
            let _invocation = invocation_span(Stage::Fetch, "req-42").entered();
            let _record = record_span("m-1").entered();
            tracing::warn!("before decoding");
            note_message("20260101T000000Z-ab", &Ticker::parse("MSFT").unwrap());
            tracing::warn!(attempt = 2u64, ok = false, "chart request failed");
            tracing::error!(error = %"boom", ticker = "OVERRIDE", "event fields win");
        });
        let lines = out.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let first = &lines[0];
        assert_eq!(first["stage"], "fetch");
        assert_eq!(first["request_id"], "req-42");
        assert_eq!(first["message_id"], "m-1");
        assert!(first.get("ticker").is_none(), "not known yet: absent");
        assert_eq!(first["level"], "WARN");
        assert_eq!(first["message"], "before decoding");
        let second = &lines[1];
        for (key, value) in [
            ("stage", "fetch"),
            ("request_id", "req-42"),
            ("message_id", "m-1"),
            ("run_id", "20260101T000000Z-ab"),
            ("ticker", "MSFT"),
            ("message", "chart request failed"),
            ("level", "WARN"),
        ] {
            assert_eq!(second[key], value, "{key} in {second}");
        }
        assert_eq!(second["attempt"], 2);
        assert_eq!(second["ok"], false);
        assert!(
            chrono::DateTime::parse_from_rfc3339(second["timestamp"].as_str().unwrap()).is_ok()
        );
        assert_eq!(lines[2]["ticker"], "OVERRIDE");
        assert_eq!(lines[2]["level"], "ERROR");
        assert_eq!(lines[2]["error"], "boom");
    }

    #[test]
    fn spans_survive_a_level_above_info() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = subscriber(
            &LogSettings {
                format: LogFormat::Json,
                filter: lambda_log_level("FATAL").unwrap().into(),
            },
            move || writer.clone(),
            false,
        );
        tracing::subscriber::with_default(subscriber, || {
            let _invocation = invocation_span(Stage::Load, "req-7").entered();
            tracing::warn!("filtered");
            tracing::error!("kept");
        });
        let lines = out.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["request_id"], "req-7");
        assert_eq!(lines[0]["stage"], "load");
    }
}
