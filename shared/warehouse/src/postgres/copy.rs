//! The binary `COPY ... FROM STDIN (FORMAT binary)` stream of Postgres
//! (<https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>):
//! a header, one tuple per row, a trailer. Values are sent in their binary
//! wire form, so every f64 and every microsecond arrives exactly.

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::CuratedRow;
use mdp_core::schema::Value;
use sqlx::PgConnection;

use crate::errors::Failure;
use crate::sql::all_columns;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// 2000-01-01T00:00:00Z, the Postgres epoch, in Unix seconds.
const PG_EPOCH_UNIX_SECONDS: i64 = 946_684_800;

fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date")
}

/// Days since 2000-01-01 (Postgres `date` binary form).
pub(crate) fn pg_date(date: NaiveDate) -> i32 {
    // NaiveDate spans ±262 143 years: the day count always fits an i32.
    (date - pg_epoch_date()).num_days() as i32
}

pub(crate) fn date_from_pg(days: i32) -> Option<NaiveDate> {
    pg_epoch_date().checked_add_signed(chrono::TimeDelta::try_days(days.into())?)
}

/// Microseconds since 2000-01-01T00:00:00Z (Postgres `timestamptz` binary form);
/// sub-microsecond digits are dropped (Postgres keeps microseconds).
pub(crate) fn pg_timestamp(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_micros() - PG_EPOCH_UNIX_SECONDS * 1_000_000
}

/// Header: signature, flags (no OIDs), header-extension length 0.
pub(crate) fn header(buf: &mut Vec<u8>) {
    buf.extend_from_slice(SIGNATURE);
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
}

/// One tuple: the field count, then each field's length and bytes (-1 for NULL).
pub(crate) fn row(buf: &mut Vec<u8>, row: &CuratedRow) {
    let values = row.values();
    buf.extend_from_slice(&(values.len() as i16).to_be_bytes());
    for value in values {
        field(buf, value);
    }
}

/// Trailer: a field count of -1.
pub(crate) fn trailer(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i16).to_be_bytes());
}

fn field(buf: &mut Vec<u8>, value: Value<'_>) {
    let mut put = |bytes: &[u8]| {
        // Field lengths are i32; our texts are far below 2 GiB.
        buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    match value {
        Value::Text(Some(s)) => put(s.as_bytes()),
        Value::Date(d) => put(&pg_date(d).to_be_bytes()),
        Value::Float(Some(f)) => put(&f.to_bits().to_be_bytes()),
        Value::Int(Some(i)) => put(&i.to_be_bytes()),
        Value::Timestamp(ts) => put(&pg_timestamp(ts).to_be_bytes()),
        Value::Text(None) | Value::Float(None) | Value::Int(None) => {
            buf.extend_from_slice(&(-1i32).to_be_bytes())
        }
    }
}

/// Streams `rows` into the table `stage` (all contract columns), `batch_size`
/// rows per COPY message.
pub(crate) async fn copy_rows(
    conn: &mut PgConnection,
    stage: &str,
    rows: &[CuratedRow],
    batch_size: usize,
) -> Result<(), Failure> {
    let statement = format!(
        "COPY {stage} ({}) FROM STDIN (FORMAT binary)",
        all_columns("")
    );
    let mut copy = conn.copy_in_raw(&statement).await?;
    let mut buf = Vec::new();
    header(&mut buf);
    for chunk in rows.chunks(batch_size.max(1)) {
        for row in chunk {
            self::row(&mut buf, row);
        }
        copy.send(std::mem::take(&mut buf)).await?;
    }
    trailer(&mut buf);
    copy.send(buf).await?;
    let copied = copy.finish().await?;
    if copied != rows.len() as u64 {
        return Err(Failure::Data(format!(
            "COPY took {copied} of {} rows",
            rows.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use mdp_core::row::DailyBar;
    use mdp_core::{Indicators, InstrumentMeta};

    use super::*;

    #[test]
    fn epochs() {
        assert_eq!(pg_date(NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()), 0);
        assert_eq!(pg_date(NaiveDate::from_ymd_opt(1999, 12, 31).unwrap()), -1);
        assert_eq!(pg_date(NaiveDate::from_ymd_opt(2025, 1, 2).unwrap()), 9133);
        assert_eq!(date_from_pg(9133), NaiveDate::from_ymd_opt(2025, 1, 2));
        let ts =
            Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 1).unwrap() + chrono::TimeDelta::microseconds(5);
        assert_eq!(pg_timestamp(ts), 1_000_005);
        let before = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(pg_timestamp(before), -1_000_000);
    }

    #[test]
    fn stream_layout() {
        let date = NaiveDate::from_ymd_opt(2000, 1, 2).unwrap();
        let at = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        let r = CuratedRow {
            ticker: "AB".into(),
            bar: DailyBar {
                date,
                open: None,
                high: None,
                low: None,
                close: 1.5,
                adj_close: None,
                volume: Some(7),
            },
            indicators: Indicators::default(),
            meta: InstrumentMeta::default(),
            created_at: at,
            updated_at: at,
        };
        let mut buf = Vec::new();
        header(&mut buf);
        row(&mut buf, &r);
        trailer(&mut buf);

        let mut expected: Vec<u8> = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        expected.extend_from_slice(&32i16.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 2, b'A', b'B']); // ticker
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 1]); // date: day 1
        for _ in 0..3 {
            expected.extend_from_slice(&[0xff; 4]); // open, high, low NULL
        }
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&1.5f64.to_be_bytes()); // close
        expected.extend_from_slice(&[0xff; 4]); // adj_close
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]); // volume
        for _ in 0..22 {
            expected.extend_from_slice(&[0xff; 4]); // indicators and meta NULL
        }
        for _ in 0..2 {
            expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]); // timestamps at the epoch
        }
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(buf, expected);
    }
}
