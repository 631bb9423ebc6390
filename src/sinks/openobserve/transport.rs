//! What a transport reports back: accepted (maybe partially) or one of three
//! failure kinds that decide the retry policy.

/// The receiver accepted the request.
#[derive(Debug, Default, PartialEq)]
pub struct Accepted {
    /// Records the receiver refused inside an accepted request (partial success).
    pub rejected: i64,
    pub message: String,
}

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying soon: connection errors, timeouts, 429, 5xx, UNAVAILABLE.
    #[error("{0}")]
    Retryable(String),
    /// Credentials or organisation refused: retried slowly, logged loudly.
    #[error("{0}")]
    Auth(String),
    /// The receiver refused this data for good (400, INVALID_ARGUMENT).
    #[error("{0}")]
    Rejected(String),
}
