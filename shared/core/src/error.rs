//! Every failure is classified once, where it is detected: a transient one is
//! worth retrying later (SQS redelivery, or the next run), a permanent one
//! never is (dead-letter it and say why).

use std::fmt;

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

/// The error every stage returns: its class decides retry or dead-letter.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{class} failure: {message}")]
pub struct StageError {
    pub class: ErrorClass,
    pub message: String,
}

impl StageError {
    pub fn transient(message: impl Into<String>) -> Self {
        StageError {
            class: ErrorClass::Transient,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        StageError {
            class: ErrorClass::Permanent,
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    /// Prefixes the message with what was being done, keeping the class.
    pub fn context(self, what: impl fmt::Display) -> Self {
        StageError {
            class: self.class,
            message: format!("{what}: {}", self.message),
        }
    }
}
