//! `mdp report`: the offline HTML report of the lake (mdp-report), written
//! to the lake's `reports/` prefix or to `--out` (a folder, `file://PATH` or
//! `s3://BUCKET/PREFIX`, opened as `MARKET_DATA_LAKE_URI` is).

use std::path::PathBuf;

use mdp_core::config::LakeUri;
use mdp_core::{Config, StageError, Ticker};
use mdp_report::{LAKE_REPORT_PREFIX, write_report};

/// Where a report goes: a store as a lake URI names one, and the prefix in it.
pub struct ReportTarget {
    pub uri: LakeUri,
    pub prefix: String,
}

impl ReportTarget {
    /// The lake's `reports/` prefix.
    pub fn in_lake(config: &Config) -> ReportTarget {
        ReportTarget {
            uri: config.lake_uri.clone(),
            prefix: LAKE_REPORT_PREFIX.to_string(),
        }
    }

    /// `--out`: `s3://BUCKET/PREFIX`, `file://PATH`, or a plain folder path.
    pub fn parse(out: &str) -> Result<ReportTarget, String> {
        let out = out.trim();
        if out.is_empty() {
            return Err("expected a folder, file://PATH or s3://BUCKET/PREFIX".into());
        }
        let uri = if out.contains("://") {
            out.parse::<LakeUri>()?
        } else {
            LakeUri::File(PathBuf::from(out))
        };
        if let LakeUri::File(path) = &uri
            && path.exists()
            && !path.is_dir()
        {
            return Err(format!("{} is a file, not a folder", path.display()));
        }
        Ok(ReportTarget {
            uri,
            prefix: String::new(),
        })
    }

    /// How to show where a key was written: a path for a folder, else its URI.
    fn location(&self, key: &str) -> String {
        match &self.uri {
            LakeUri::File(root) => root.join(key).display().to_string(),
            LakeUri::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/{key}"),
            LakeUri::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/{key}"),
        }
    }
}

/// What `mdp report` (and `mdp demo`) print.
pub struct ReportWritten {
    /// The index's path or `s3://` URI.
    pub index: String,
    pub tickers: usize,
    pub problems: Vec<String>,
}

/// Reads the lake the configuration names and writes the report to `target`.
pub async fn run_report(
    config: &Config,
    tickers: Option<Vec<Ticker>>,
    target: &ReportTarget,
) -> Result<ReportWritten, StageError> {
    let lake = mdp_pipeline::runner::open_lake(config).await;
    let out = if target.uri == config.lake_uri {
        lake.clone()
    } else {
        let mut out_config = config.clone();
        out_config.lake_uri = target.uri.clone();
        mdp_pipeline::runner::open_lake(&out_config).await
    };
    let outcome = write_report(
        &lake,
        tickers,
        out.store(),
        &target.prefix,
        chrono::Utc::now(),
    )
    .await?;
    Ok(ReportWritten {
        index: target.location(&outcome.index_key),
        tickers: outcome.tickers,
        problems: outcome.problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_is_a_folder_or_a_lake_uri() {
        let t = ReportTarget::parse("s3://bucket/site/report").unwrap();
        assert_eq!(
            t.location("index.html"),
            "s3://bucket/site/report/index.html"
        );
        let t = ReportTarget::parse("s3://bucket").unwrap();
        assert_eq!(t.location("index.html"), "s3://bucket/index.html");
        let t = ReportTarget::parse("out/report").unwrap();
        assert_eq!(t.location("index.html"), "out/report/index.html");
        let t = ReportTarget::parse("file://./x").unwrap();
        assert_eq!(t.location("index.html"), "./x/index.html");
        for bad in ["", "  ", "s3://", "ftp://host/x", "Cargo.toml"] {
            assert!(ReportTarget::parse(bad).is_err(), "{bad:?}");
        }
    }
}
