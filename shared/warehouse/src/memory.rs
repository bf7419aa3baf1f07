//! The warehouse in memory: the load strategies applied to a map, with the
//! same checks and reports as the SQL backends. It lets the load stage and
//! the one-process runner be tested without a database.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::NaiveDate;
use mdp_core::config::LoadStrategy;
use mdp_core::{CuratedRow, Ticker};

use crate::port::{
    CuratedBatch, LoadReport, RowSource, RowWarehouse, WarehouseError, WarehouseLoader, check_rows,
    checked_side, rows_under_lock,
};
use crate::side::{SideBatch, SideReport, SideRows, plan};

/// Rows by (ticker, date), side rows by ticker; `migrate` creates nothing.
#[derive(Default)]
pub struct MemoryWarehouse {
    rows: Mutex<BTreeMap<(String, NaiveDate), CuratedRow>>,
    side: Mutex<BTreeMap<String, SideRows>>,
    /// Loads one at a time, as the databases' locks make them.
    loads: tokio::sync::Mutex<()>,
}

impl MemoryWarehouse {
    pub fn new() -> MemoryWarehouse {
        MemoryWarehouse::default()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, NaiveDate), CuratedRow>> {
        // A panic while holding the lock cannot leave a half-applied load:
        // every load below is applied to a copy and swapped in whole.
        self.rows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn side_tables(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SideRows>> {
        // Each load swaps in a ticker's side rows whole, as `apply` does.
        self.side
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl WarehouseLoader for MemoryWarehouse {
    fn describe(&self) -> String {
        "memory".to_string()
    }

    async fn migrate(&self) -> Result<(), WarehouseError> {
        Ok(())
    }

    async fn load(
        &self,
        batch: &CuratedBatch<'_>,
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError> {
        let _serial = self.loads.lock().await;
        let what = format!("loading {} into memory", batch.ticker);
        let Some(rows) =
            rows_under_lock(RowSource::Lake(batch), batch.ticker, strategy, &what).await?
        else {
            return Ok(LoadReport::default());
        };
        self.apply(batch.ticker, &rows, strategy)
    }

    async fn load_side(
        &self,
        side: &SideBatch<'_>,
        strategy: LoadStrategy,
    ) -> Result<SideReport, WarehouseError> {
        let _serial = self.loads.lock().await;
        checked_side(
            side,
            &format!("loading the side data of {} into memory", side.ticker),
        )?;
        let mut tables = self.side_tables();
        let stored = tables
            .get(side.ticker.as_str())
            .cloned()
            .unwrap_or_default();
        let plan = plan(side, &stored, strategy);
        tables.insert(side.ticker.to_string(), plan.apply_to(&stored));
        Ok(plan.report)
    }

    async fn close(&self) {}
}

#[async_trait]
impl RowWarehouse for MemoryWarehouse {
    async fn load_rows(
        &self,
        ticker: &Ticker,
        rows: &[CuratedRow],
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError> {
        let _serial = self.loads.lock().await;
        check_rows(ticker, rows).map_err(|why| WarehouseError::Refused {
            what: format!("loading {ticker} into memory"),
            why,
        })?;
        self.apply(ticker, rows, strategy)
    }

    async fn read_rows(&self, ticker: Option<&Ticker>) -> Result<Vec<CuratedRow>, WarehouseError> {
        Ok(self
            .table()
            .values()
            .filter(|r| ticker.is_none_or(|t| r.ticker == t.as_str()))
            .cloned()
            .collect())
    }

    async fn read_side(&self, ticker: &Ticker) -> Result<SideRows, WarehouseError> {
        Ok(self
            .side_tables()
            .get(ticker.as_str())
            .cloned()
            .unwrap_or_default())
    }

    async fn drop_table(&self) -> Result<(), WarehouseError> {
        self.table().clear();
        Ok(())
    }
}

impl MemoryWarehouse {
    /// Applies a checked load to a copy of the table and swaps it in whole.
    fn apply(
        &self,
        ticker: &Ticker,
        rows: &[CuratedRow],
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError> {
        let mut table = self.table();
        let mut next = table.clone();
        let mut report = LoadReport {
            rows_in: rows.len(),
            ..LoadReport::default()
        };
        if strategy == LoadStrategy::TruncateInsert {
            let before = next.len();
            next.retain(|(t, _), _| t != ticker.as_str());
            report.deleted = (before - next.len()) as u64;
        }
        for row in rows {
            let key = (row.ticker.clone(), row.date());
            match next.get_mut(&key) {
                None => {
                    next.insert(key, row.clone());
                    report.inserted += 1;
                }
                Some(stored) if strategy == LoadStrategy::Upsert && !stored.same_values(row) => {
                    let created_at = stored.created_at;
                    *stored = row.clone();
                    stored.created_at = created_at;
                    report.updated += 1;
                }
                Some(_) => {}
            }
        }
        *table = next;
        Ok(report)
    }
}
