//! Database errors as warehouse errors, classified in one place: transient
//! when retrying later can help (the warehouse is unreachable, busy,
//! shutting down, out of connections, a serialization failure), permanent
//! otherwise (bad SQL, constraint violations, data that does not fit).
//! Messages never carry the password.

use mdp_core::ErrorClass;
use mdp_core::config::WarehouseKind as Dialect;
use mdp_core::connection::WarehouseConnection;

use crate::port::{DatabaseError, WarehouseError};

/// A failure inside a backend: from the database, a local file, or data
/// that cannot be stored or read back faithfully (always permanent).
#[derive(Debug)]
pub(crate) enum Failure {
    Db(sqlx::Error),
    Io(std::io::Error),
    Data(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Db(e)
    }
}

impl Failure {
    /// The warehouse error of `what` failing this way, without secrets.
    pub(crate) fn into_error(
        self,
        dialect: Dialect,
        secrets: &Secrets,
        what: &str,
    ) -> WarehouseError {
        let what = secrets.scrub(what);
        match self {
            Failure::Db(e) => WarehouseError::Database {
                what,
                class: class_of(dialect, &e),
                source: DatabaseError {
                    message: secrets.scrub(&describe(&e)),
                    code: match &e {
                        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
                        _ => None,
                    },
                },
            },
            Failure::Io(source) => WarehouseError::Io { what, source },
            Failure::Data(why) => WarehouseError::Refused {
                what,
                why: secrets.scrub(&why),
            },
        }
    }
}

/// Postgres SQLSTATE classes worth retrying: 08 connection exception,
/// 40 transaction rollback (serialization failure, deadlock), 53
/// insufficient resources, 57 operator intervention (shutdown, cancel).
const PG_TRANSIENT_CLASSES: [&str; 4] = ["08", "40", "53", "57"];

/// SQLite primary result codes worth retrying: BUSY, LOCKED, IOERR, FULL.
const SQLITE_TRANSIENT_CODES: [i64; 4] = [5, 6, 10, 13];

/// Redshift reports a serializable isolation violation (its error 1023:
/// another transaction touched the same table; retrying succeeds) with a
/// generic SQLSTATE: recognised by its message.
const REDSHIFT_TRANSIENT_MESSAGES: [&str; 1] = ["serializable isolation violation"];

pub(crate) fn class_of_sqlstate(dialect: Dialect, code: &str) -> ErrorClass {
    let transient = match dialect {
        Dialect::Postgres | Dialect::Redshift => {
            PG_TRANSIENT_CLASSES.iter().any(|c| code.starts_with(c))
        }
        // sqlx reports the extended result code; its low byte is the primary code.
        Dialect::Sqlite => code
            .parse::<i64>()
            .is_ok_and(|c| SQLITE_TRANSIENT_CODES.contains(&(c & 0xff))),
    };
    if transient {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

/// A server certificate the client refused (wrong name, unknown issuer,
/// expired): the same certificate is refused on every retry.
fn refused_certificate(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Io(io) if io
    .get_ref()
    .and_then(|e| e.downcast_ref::<rustls::Error>())
    .is_some_and(|e| matches!(
        e,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )))
}

pub(crate) fn class_of(dialect: Dialect, err: &sqlx::Error) -> ErrorClass {
    if refused_certificate(err) {
        return ErrorClass::Permanent;
    }
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => ErrorClass::Transient,
        sqlx::Error::Database(db)
            if dialect == Dialect::Redshift
                && REDSHIFT_TRANSIENT_MESSAGES
                    .iter()
                    .any(|m| db.message().to_ascii_lowercase().contains(m)) =>
        {
            ErrorClass::Transient
        }
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => class_of_sqlstate(dialect, &code),
            None => ErrorClass::Permanent,
        },
        _ => ErrorClass::Permanent,
    }
}

/// Longest Postgres detail or context kept in a message ("Failing row
/// contains (...)" repeats a whole row).
const MAX_EXTRA: usize = 240;

fn clipped(text: &str) -> String {
    match text.char_indices().nth(MAX_EXTRA) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The error text, with Postgres' detail, context and constraint, and the
/// SQLSTATE / SQLite result code when known.
fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => {
            let mut text = db.message().to_string();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                if let Some(detail) = pg.detail() {
                    text.push_str(&format!("; detail: {}", clipped(detail)));
                }
                if let Some(context) = pg.r#where() {
                    text.push_str(&format!("; context: {}", clipped(context)));
                }
                if let Some(constraint) = pg.constraint() {
                    text.push_str(&format!("; constraint: {constraint}"));
                }
            }
            match db.code() {
                Some(code) => format!("{text} (code {code})"),
                None => text,
            }
        }
        other => other.to_string(),
    }
}

/// The connection whose password is scrubbed out of messages (a second
/// line of defence: database drivers do not repeat passwords anyway).
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets(Option<WarehouseConnection>);

impl Secrets {
    pub fn of(connection: &WarehouseConnection) -> Secrets {
        Secrets(Some(connection.clone()))
    }

    pub fn scrub(&self, text: &str) -> String {
        match &self.0 {
            Some(connection) => connection.scrub(text),
            None => text.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_sqlstate_classes() {
        for code in [
            "08006", "08001", "40001", "40P01", "53300", "57P01", "57014",
        ] {
            assert_eq!(
                class_of_sqlstate(Dialect::Postgres, code),
                ErrorClass::Transient,
                "{code}"
            );
        }
        for code in ["23505", "23514", "42P01", "42601", "22003", "XX000"] {
            assert_eq!(
                class_of_sqlstate(Dialect::Postgres, code),
                ErrorClass::Permanent,
                "{code}"
            );
        }
    }

    #[test]
    fn redshift_uses_postgres_sqlstates() {
        for (code, class) in [
            ("40001", ErrorClass::Transient),
            ("57P01", ErrorClass::Transient),
            ("XX000", ErrorClass::Permanent),
            ("42601", ErrorClass::Permanent),
        ] {
            assert_eq!(class_of_sqlstate(Dialect::Redshift, code), class, "{code}");
        }
    }

    #[test]
    fn sqlite_result_codes() {
        // SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT (517), SQLITE_LOCKED, SQLITE_IOERR_WRITE (778), SQLITE_FULL
        for code in ["5", "517", "6", "778", "13"] {
            assert_eq!(
                class_of_sqlstate(Dialect::Sqlite, code),
                ErrorClass::Transient,
                "{code}"
            );
        }
        // SQLITE_CONSTRAINT_UNIQUE (2067), SQLITE_ERROR, SQLITE_CONSTRAINT_TRIGGER (1811)
        for code in ["2067", "1", "1811"] {
            assert_eq!(
                class_of_sqlstate(Dialect::Sqlite, code),
                ErrorClass::Permanent,
                "{code}"
            );
        }
    }

    #[test]
    fn connection_errors_are_transient() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(class_of(Dialect::Postgres, &io), ErrorClass::Transient);
        assert_eq!(
            class_of(Dialect::Postgres, &sqlx::Error::PoolTimedOut),
            ErrorClass::Transient
        );
        assert_eq!(
            class_of(Dialect::Sqlite, &sqlx::Error::RowNotFound),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn long_details_are_clipped() {
        assert_eq!(clipped("short"), "short");
        let long = "é".repeat(500);
        let c = clipped(&long);
        assert_eq!(c.chars().count(), MAX_EXTRA + 1);
        assert!(c.ends_with('…'));
    }

    #[test]
    fn passwords_are_scrubbed() {
        let none = |_: &str| None;
        let url = "postgres://user:hunter%232@db/x?sslmode=require";
        let s = Secrets::of(&WarehouseConnection::parse(url, none).unwrap());
        let text = s.scrub("a hunter%232 b hunter#2 c");
        assert!(!text.contains("hunter"), "{text}");
        let no_password = WarehouseConnection::parse("postgres://user@db/x", none).unwrap();
        assert_eq!(Secrets::of(&no_password).scrub("user@db"), "user@db");
        assert_eq!(Secrets::default().scrub("./data/w.db"), "./data/w.db");
    }
}
