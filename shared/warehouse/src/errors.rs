//! Database errors as stage errors: transient when retrying later can help
//! (the warehouse is unreachable, busy, shutting down, out of connections, a
//! serialization failure), permanent otherwise (bad SQL, constraint
//! violations, data that does not fit). Messages never carry the password.

use mdp_core::{ErrorClass, StageError};

/// Which database produced an error: their codes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
    /// Postgres SQLSTATEs, plus Redshift's own transient conditions.
    Redshift,
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

pub(crate) fn class_of(dialect: Dialect, err: &sqlx::Error) -> ErrorClass {
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

/// Secrets of a connection URL, for scrubbing them out of messages.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    /// The password of `url`'s user info and of a `password=` query parameter,
    /// as written and percent-decoded.
    pub fn of_url(url: &str) -> Secrets {
        let mut found = Vec::new();
        if let Some((_, rest)) = url.split_once("://") {
            let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
            if let Some((userinfo, _)) = authority.rsplit_once('@')
                && let Some((_, password)) = userinfo.split_once(':')
            {
                found.push(password.to_string());
            }
            if let Some((_, query)) = tail.split_once('?') {
                for kv in query.split('&') {
                    if let Some((k, v)) = kv.split_once('=')
                        && k.eq_ignore_ascii_case("password")
                    {
                        found.push(v.to_string());
                    }
                }
            }
        }
        let decoded: Vec<String> = found
            .iter()
            .map(|s| mdp_core::encoding::percent_decode(s))
            .collect();
        found.extend(decoded);
        // Very short "passwords" would blank out ordinary words; sqlx messages do
        // not repeat passwords anyway, this is a second line of defence.
        found.retain(|s| s.len() >= 4);
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        found.dedup();
        Secrets(found)
    }

    pub fn scrub(&self, text: &str) -> String {
        self.0.iter().fold(text.to_string(), |t, secret| {
            t.replace(secret.as_str(), "***")
        })
    }
}

/// `what: error`, classified, without secrets.
pub(crate) fn stage_error(
    dialect: Dialect,
    secrets: &Secrets,
    what: &str,
    err: &sqlx::Error,
) -> StageError {
    let message = secrets.scrub(&format!("{what}: {}", describe(err)));
    match class_of(dialect, err) {
        ErrorClass::Transient => StageError::transient(message),
        ErrorClass::Permanent => StageError::permanent(message),
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
        let s =
            Secrets::of_url("postgres://user:hunter%232@db/x?sslmode=require&password=sekrit99");
        let text = s.scrub("a hunter%232 b hunter#2 c sekrit99 d");
        assert_eq!(text, "a *** b *** c *** d");
        assert_eq!(
            Secrets::of_url("postgres://user@db/x").scrub("user@db"),
            "user@db"
        );
        assert_eq!(
            Secrets::of_url("sqlite://./data/w.db").scrub("./data/w.db"),
            "./data/w.db"
        );
    }
}
