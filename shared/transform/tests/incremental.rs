//! The daily transform resumes from the watermark's tail instead of reading
//! the whole history, and its results are bit-identical to one transform of
//! the same bars into an empty lake: over 30 years of bars, day by day across
//! a year boundary, after restatements of recent and of old bars, and after a
//! transform stopped between its partitions and its watermark.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use mdp_core::config::ParquetCompression;
use mdp_core::messages::TransformRequest;
use mdp_core::quality::QualityFinding;
use mdp_core::{
    CuratedRow, Lake, LocalStore, ObjectStore, StageError, StoreError, Ticker, Watermark,
};
use mdp_devtools::{synthetic_bars, synthetic_daily_chart};
use mdp_lake::{read_history, read_quality_findings};
use mdp_transform::{TransformOutcome, transform_stage};

const TICKER: &str = "LONG";
/// Weekday sessions from 1996-01-01 to March 2025: 30 calendar years.
const SESSIONS: usize = 29 * 261 + 60;
const SEED: u64 = 7;

/// The whole synthetic series as a chart response, with `restated` closes
/// (session index → new close) applied.
struct Series {
    body: serde_json::Value,
    dates: Vec<NaiveDate>,
}

impl Series {
    fn new() -> Series {
        let first: NaiveDate = "1996-01-01".parse().unwrap();
        let body = synthetic_daily_chart(TICKER, first, SESSIONS, SEED);
        Series {
            body: serde_json::from_slice(&body).unwrap(),
            dates: synthetic_bars(first, SESSIONS, SEED)
                .iter()
                .map(|b| b.date)
                .collect(),
        }
    }

    /// Restates a close, widening the session's high or low to hold it (a
    /// bar whose close is outside them is quarantined, not restated).
    fn restate(&mut self, session: usize, factor: f64) {
        let quote = &mut self.body["chart"]["result"][0]["indicators"]["quote"][0];
        let close = quote["close"][session].as_f64().unwrap() * factor;
        quote["close"][session] = serde_json::json!(close);
        let high = quote["high"][session].as_f64().unwrap().max(close);
        let low = quote["low"][session].as_f64().unwrap().min(close);
        quote["high"][session] = serde_json::json!(high);
        quote["low"][session] = serde_json::json!(low);
    }

    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap()
    }
}

fn lake_in(dir: &Path) -> Lake {
    Lake::new(Arc::new(LocalStore::new(dir)))
}

/// A lake on `dir` whose writes outside the raw zone fail after the first
/// `writes`: the lake is left as a transform killed at that point leaves it
/// (each write is atomic).
fn lake_stopping_after(dir: &Path, writes: usize) -> Lake {
    Lake::new(Arc::new(StopsAfter {
        inner: LocalStore::new(dir),
        left: AtomicUsize::new(writes),
    }))
}

struct StopsAfter {
    inner: LocalStore,
    left: AtomicUsize,
}

#[async_trait::async_trait]
impl ObjectStore for StopsAfter {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        if !key.starts_with("raw/")
            && self
                .left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
        {
            return Err(StoreError::Backend {
                key: key.to_string(),
                message: "stopped".into(),
            });
        }
        self.inner.put(key, bytes).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    fn uri(&self) -> String {
        self.inner.uri()
    }
}

fn ticker() -> Ticker {
    Ticker::parse(TICKER).unwrap()
}

fn stamp(day: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + i64::from(day) * 86_400, 0).unwrap()
}

/// Transforms the bars of `start..=end` of `body`, stamping new rows `now`.
async fn transform(
    lake: &Lake,
    body: &[u8],
    start: NaiveDate,
    end: NaiveDate,
    now: DateTime<Utc>,
) -> TransformOutcome {
    try_transform(lake, body, start, end, now).await.unwrap()
}

async fn try_transform(
    lake: &Lake,
    body: &[u8],
    start: NaiveDate,
    end: NaiveDate,
    now: DateTime<Utc>,
) -> Result<TransformOutcome, StageError> {
    let raw_key = Lake::raw_key(&ticker(), start, end);
    lake.store().put(&raw_key, body.to_vec()).await.unwrap();
    let request = TransformRequest {
        v: 1,
        run_id: "t".into(),
        ticker: ticker(),
        raw_key,
        start,
        end,
    };
    transform_stage(lake, &request, ParquetCompression::Snappy, now).await
}

/// A new lake holding the series up to session `through`, in one transform.
async fn backfilled(series: &Series, through: usize) -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path());
    let body = series.bytes();
    transform(
        &lake,
        &body,
        series.dates[0],
        series.dates[through],
        stamp(0),
    )
    .await;
    (dir, lake)
}

/// What one transform of the same bars into an empty lake gives.
async fn recomputed(
    series: &Series,
    through: usize,
) -> (Vec<CuratedRow>, Watermark, Vec<QualityFinding>) {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path());
    let out = transform(
        &lake,
        &series.bytes(),
        series.dates[0],
        series.dates[through],
        stamp(0),
    )
    .await;
    assert!(out.full_recomputation);
    let mark = lake.read_watermark(&ticker()).await.unwrap().unwrap();
    let findings = read_quality_findings(&lake, &ticker()).await.unwrap();
    (
        read_history(&lake, &ticker()).await.unwrap(),
        mark,
        findings,
    )
}

/// Every value bit for bit (the timestamps say when a row changed, which
/// differs between the two ways by design).
fn assert_bit_identical(got: &[CuratedRow], expected: &[CuratedRow], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: rows");
    for (a, b) in got.iter().zip(expected) {
        assert_eq!(a.date(), b.date(), "{what}");
        assert!(a.same_values(b), "{what}: {} differs", a.date());
        let bits = |r: &CuratedRow| r.indicators.values().map(|v| v.map(f64::to_bits));
        assert_eq!(bits(a), bits(b), "{what}: indicators of {}", a.date());
    }
}

async fn assert_matches_recomputation(lake: &Lake, series: &Series, through: usize, what: &str) {
    let (expected, expected_mark, expected_findings) = recomputed(series, through).await;
    let got = read_history(lake, &ticker()).await.unwrap();
    assert_bit_identical(&got, &expected, what);
    let mark = lake.read_watermark(&ticker()).await.unwrap().unwrap();
    assert_eq!(
        (mark.last_date, mark.rows),
        (expected_mark.last_date, expected_mark.rows),
        "{what}: watermark"
    );
    assert_eq!(
        mark.indicator_tail, expected_mark.indicator_tail,
        "{what}: the tail the next day resumes from"
    );
    // The synthetic series trades on weekdays, exchange holidays included:
    // every holiday is a finding, and a restatement makes moves.
    assert!(!expected_findings.is_empty());
    assert_eq!(
        read_quality_findings(lake, &ticker()).await.unwrap(),
        expected_findings,
        "{what}: quality findings"
    );
    assert_eq!(mark.quality_findings, expected_findings.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_runs_over_30_years_match_a_full_recomputation_bit_for_bit() {
    let mut series = Series::new();
    let last = SESSIONS - 1;
    // The daily runs cover the last 130 sessions, across New Year 2025.
    let first_daily = last - 130;
    assert!(series.dates[first_daily].year() < series.dates[last].year());

    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path());
    let backfill = transform(
        &lake,
        &series.bytes(),
        series.dates[0],
        series.dates[first_daily - 1],
        stamp(0),
    )
    .await;
    assert!(backfill.full_recomputation);
    assert_eq!(backfill.partitions_written.len(), 29);

    for (day, session) in (first_daily..=last).enumerate() {
        // Two restatements on the way: a close 5 sessions back (inside the
        // tail: still resumed) and one 10 years back (a full recomputation).
        let (start, full) = match session - first_daily {
            60 => {
                series.restate(session - 5, 1.01);
                (session - 5, false)
            }
            100 => {
                series.restate(session - 2610, 0.97);
                (session - 2610, true)
            }
            _ => (session, false),
        };
        let out = transform(
            &lake,
            &series.bytes(),
            series.dates[start],
            series.dates[session],
            stamp(day as u32 + 1),
        )
        .await;
        let date = series.dates[session];
        assert_eq!(out.full_recomputation, full, "{date}");
        assert_eq!(out.rows_total, session as u64 + 1, "{date}");
        if !full {
            // Only the partitions the new bars are in are rewritten.
            let years: Vec<i32> = (start..=session).map(|s| series.dates[s].year()).collect();
            let written: Vec<i32> = out
                .partitions_written
                .iter()
                .map(|key| Lake::partition_year(&ticker(), key).unwrap())
                .collect();
            assert!(
                written.iter().all(|y| years.contains(y)),
                "{date}: wrote {written:?}"
            );
        }
        if matches!(session - first_daily, 0 | 60 | 100) || session == last {
            assert_matches_recomputation(&lake, &series, session, &date.to_string()).await;
        }
    }
}

/// A transform stopped after its partition but before its watermark leaves
/// a partition the watermark's tail does not describe; the next day's
/// transform notices and recomputes instead of resuming from a stale tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_written_after_the_watermark_is_not_resumed_from() {
    let mut series = Series::new();
    let last = SESSIONS - 1;
    let (dir, lake) = backfilled(&series, last - 3).await;

    // A close inside the tail is restated, and the transform stops after
    // its one partition.
    series.restate(last - 3, 1.05);
    let day = series.dates[last - 3];
    let stopping = lake_stopping_after(dir.path(), 1);
    try_transform(&stopping, &series.bytes(), day, day, stamp(1))
        .await
        .unwrap_err();
    let mark = lake.read_watermark(&ticker()).await.unwrap().unwrap();
    assert_eq!(mark.last_date, day, "the watermark was not rewritten");

    let next = series.dates[last - 2];
    let out = transform(&lake, &series.bytes(), next, next, stamp(2)).await;
    assert!(
        out.full_recomputation,
        "the stored closes differ from the tail's"
    );
    assert_matches_recomputation(&lake, &series, last - 2, "after a stale tail").await;

    // The same with a new year's partition the watermark never recorded.
    let first_of_year = (0..SESSIONS)
        .rev()
        .find(|s| series.dates[*s].year() > series.dates[*s - 1].year())
        .unwrap();
    let (dir, lake) = backfilled(&series, first_of_year - 1).await;
    let body = series.bytes();
    let day = series.dates[first_of_year];
    let stopping = lake_stopping_after(dir.path(), 1);
    try_transform(&stopping, &body, day, day, stamp(1))
        .await
        .unwrap_err();
    let next = series.dates[first_of_year + 1];
    let out = transform(&lake, &body, next, next, stamp(2)).await;
    assert!(out.full_recomputation, "a partition the watermark lacks");
    assert_matches_recomputation(&lake, &series, first_of_year + 1, "after a new year").await;
    let mark = lake.read_watermark(&ticker()).await.unwrap().unwrap();
    assert_eq!(
        mark.partitions.get(&day.year()),
        Some(&mark.generation),
        "the partition the watermark lacked counts as rewritten now, so the load catches it up"
    );
    let out = transform(&lake, &body, next, next, stamp(3)).await;
    assert!(!out.full_recomputation, "and the next day resumes again");
}

/// A restatement older than the tail rewrites old years first; if it stops
/// there, the stored tail must not be used, or the next day would resume
/// from averages of the closes before the restatement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_restatement_of_old_years_leaves_no_tail_to_resume_from() {
    let mut series = Series::new();
    let last = SESSIONS - 1;
    let (dir, lake) = backfilled(&series, last - 1).await;

    // A close of 2005 restated: every later year changes. The transform
    // stops after two writes: the watermark without its tail, then 2005.
    let session = series.dates.iter().position(|d| d.year() == 2005).unwrap();
    series.restate(session, 1.5);
    let day = series.dates[session];
    let stopping = lake_stopping_after(dir.path(), 2);
    try_transform(&stopping, &series.bytes(), day, day, stamp(1))
        .await
        .unwrap_err();
    let mark = lake.read_watermark(&ticker()).await.unwrap().unwrap();
    assert_eq!(mark.indicator_tail, None);
    assert_eq!(mark.last_date, series.dates[last - 1]);

    let next = series.dates[last];
    let out = transform(&lake, &series.bytes(), next, next, stamp(2)).await;
    assert!(out.full_recomputation);
    assert_matches_recomputation(&lake, &series, last, "after a stopped restatement").await;
}
