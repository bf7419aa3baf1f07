//! The run ledger: per ticker, the latest run that touched it and each
//! stage's outcome (`state/runs/ticker=X.json`). Every stage records itself
//! — `mdp run` in one process, each function in AWS — so `mdp status` can say
//! what the last run did to a ticker without reading logs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Lake, StoreError};
use crate::ticker::Ticker;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageOutcome {
    Ok,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub outcome: StageOutcome,
    pub at: DateTime<Utc>,
    /// Rows handled, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The latest run of a ticker and what each stage did in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub stages: BTreeMap<String, StageRecord>,
}

impl RunRecord {
    /// A stage failed in this run.
    pub fn failed(&self) -> Option<(&str, &StageRecord)> {
        self.stages
            .iter()
            .find(|(_, r)| r.outcome == StageOutcome::Failed)
            .map(|(s, r)| (s.as_str(), r))
    }
}

impl Lake {
    pub fn run_key(ticker: &Ticker) -> String {
        format!("state/runs/ticker={}.json", ticker.partition_value())
    }

    pub async fn read_run(&self, ticker: &Ticker) -> Result<Option<RunRecord>, StoreError> {
        let key = Self::run_key(ticker);
        match self.store().get(&key).await? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Corrupt {
                        key,
                        what: "run record",
                        source,
                    })
            }
        }
    }

    /// Records a stage's outcome in the ticker's latest run: a record of an
    /// earlier run is replaced, one of a later run is left alone (a late
    /// redelivery of an old message must not hide the newer run).
    pub async fn record_stage(
        &self,
        ticker: &Ticker,
        run_id: &str,
        stage: &str,
        outcome: StageOutcome,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        let mut record = match self.read_run(ticker).await.ok().flatten() {
            // Run ids start with their UTC start time: they sort by age.
            Some(r) if r.run_id.as_str() > run_id => return Ok(()),
            Some(r) if r.run_id == run_id => r,
            _ => RunRecord {
                run_id: run_id.to_string(),
                stages: BTreeMap::new(),
            },
        };
        record.stages.insert(
            stage.to_string(),
            StageRecord {
                outcome,
                at: Utc::now(),
                detail,
            },
        );
        let bytes = serde_json::to_vec(&record).expect("a run record serialises");
        // Informs `mdp status`; a power cut may lose the latest record.
        self.store()
            .put_advisory(&Self::run_key(ticker), bytes)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::lake::LocalStore;

    #[tokio::test]
    async fn stages_of_one_run_accumulate_and_an_older_run_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let t = Ticker::parse("MSFT").unwrap();
        let (old, new) = ("20250101T000000Z-aaaa", "20250102T000000Z-bbbb");
        lake.record_stage(&t, old, "fetch", StageOutcome::Ok, None)
            .await
            .unwrap();
        lake.record_stage(&t, new, "fetch", StageOutcome::Ok, Some("5 rows".into()))
            .await
            .unwrap();
        lake.record_stage(&t, new, "load", StageOutcome::Failed, Some("locked".into()))
            .await
            .unwrap();
        lake.record_stage(&t, old, "load", StageOutcome::Ok, None)
            .await
            .unwrap();
        let record = lake.read_run(&t).await.unwrap().unwrap();
        assert_eq!(record.run_id, new);
        assert_eq!(record.stages.len(), 2);
        assert_eq!(record.failed().unwrap().0, "load");
        assert!(dir.path().join("state/runs/ticker=MSFT.json").is_file());
    }
}
