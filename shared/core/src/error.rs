//! Every failure is classified once, where it is detected: a transient one is
//! worth retrying later (SQS redelivery, or the next run), a permanent one
//! never is (dead-letter it and say why).
//!
//! Each crate has its own error enum (thiserror, with `#[source]` chains)
//! whose `class()` decides the class per variant; [`StageError`] carries
//! that class and the typed error itself, and prints the whole chain, so a
//! log line shows every cause.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// HTTP 429/5xx, timeouts, connection errors, an unreachable warehouse.
    Transient,
    /// Unknown symbol, malformed message, invalid request: retrying cannot help.
    Permanent,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        })
    }
}

/// A plain message as an error, for failures that have no typed cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Message(pub String);

/// What was being done when the inner error happened.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct Context {
    what: String,
    #[source]
    source: Arc<dyn Error + Send + Sync>,
}

/// The error every stage returns: its class decides retry or dead-letter;
/// its cause is the typed error of the crate that detected the failure.
#[derive(Debug, Clone)]
pub struct StageError {
    pub class: ErrorClass,
    cause: Arc<dyn Error + Send + Sync>,
}

impl StageError {
    /// A typed error with the class its crate decided for it.
    pub fn with_source(class: ErrorClass, cause: impl Error + Send + Sync + 'static) -> Self {
        StageError {
            class,
            cause: Arc::new(cause),
        }
    }

    /// A transient failure described by a message.
    pub fn transient(message: impl Into<String>) -> Self {
        StageError::with_source(ErrorClass::Transient, Message(message.into()))
    }

    /// A permanent failure described by a message.
    pub fn permanent(message: impl Into<String>) -> Self {
        StageError::with_source(ErrorClass::Permanent, Message(message.into()))
    }

    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    /// Puts what was being done in front of the cause, keeping the class.
    pub fn context(self, what: impl fmt::Display) -> Self {
        StageError {
            class: self.class,
            cause: Arc::new(Context {
                what: what.to_string(),
                source: self.cause,
            }),
        }
    }

    /// The typed error that caused this one.
    pub fn cause(&self) -> &(dyn Error + Send + Sync + 'static) {
        self.cause.as_ref()
    }

    /// The first error of the chain of type `E`, if any.
    pub fn find<E: Error + 'static>(&self) -> Option<&E> {
        let mut next: Option<&(dyn Error + 'static)> = Some(self.cause());
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<E>() {
                return Some(found);
            }
            next = e.source();
        }
        None
    }

    /// The whole chain, outermost first, joined by `: `.
    pub fn message(&self) -> String {
        chain(self.cause())
    }
}

/// An error and all its sources, joined by `: ` (a source whose text is
/// already part of its parent's is not repeated).
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failure: {}", self.class, self.message())
    }
}

/// The display already holds the whole chain, so `source()` is not repeated.
impl Error for StageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Inner {
        #[error("socket closed")]
        Closed,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("reading partition p")]
    struct Outer {
        #[source]
        source: Inner,
    }

    #[test]
    fn the_whole_chain_is_shown_and_searchable() {
        let e = StageError::with_source(
            ErrorClass::Transient,
            Outer {
                source: Inner::Closed,
            },
        )
        .context("loading AAPL");
        assert_eq!(
            e.to_string(),
            "transient failure: loading AAPL: reading partition p: socket closed"
        );
        assert!(e.is_transient());
        assert!(matches!(e.find::<Inner>(), Some(Inner::Closed)));
        assert!(e.find::<Message>().is_none());
        let m = StageError::permanent("bad message");
        assert_eq!(m.to_string(), "permanent failure: bad message");
        assert_eq!(m.find::<Message>().unwrap().0, "bad message");
    }
}
