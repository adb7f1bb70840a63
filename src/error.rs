//! Command errors. Each becomes Redis's exact error reply in one place
//! (`CmdError::to_reply`), so handlers never format error strings.

use strata_engines::EngineError;

use crate::protocol::Reply;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmdError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    #[error("ERR timeout is not a float or out of range")]
    TimeoutNotFloat,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(String),
    /// An error reply whose full text (with its code) is given.
    #[error("{0}")]
    Custom(String),
    /// Storage failed; the client sees a generic error, the log the cause.
    #[error("ERR storage error: {0}")]
    Storage(String),
}

impl CmdError {
    /// `ERR <text>`.
    pub fn err(text: impl std::fmt::Display) -> CmdError {
        CmdError::Custom(format!("ERR {text}"))
    }

    pub fn to_reply(&self) -> Reply {
        Reply::Error(self.to_string())
    }
}

impl From<EngineError> for CmdError {
    fn from(e: EngineError) -> CmdError {
        tracing::error!(error = %e, "storage error");
        CmdError::Storage(e.to_string())
    }
}

/// What handlers return.
pub type CmdResult = Result<Reply, CmdError>;
