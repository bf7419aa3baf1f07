//! Logging for every binary: to stderr (stdout is for results), level from
//! `RUST_LOG` (default `info`), human-readable or one JSON object per line
//! (`MDP_LOG_FORMAT=json|text`; Lambda functions default to JSON for CloudWatch).

use tracing_subscriber::EnvFilter;

pub fn init_logging(json_by_default: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("MDP_LOG_FORMAT") {
        Ok(v) if v.eq_ignore_ascii_case("json") => true,
        Ok(v) if v.eq_ignore_ascii_case("text") => false,
        _ => json_by_default,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_target(false).try_init()
    };
}
