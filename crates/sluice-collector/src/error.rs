use hyper::StatusCode;

/// Why a request (not one event of it) was refused, or the collector could
/// not start. Each variant says which HTTP status and gRPC code it becomes.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("invalid collector configuration: {0}")]
    Config(String),
    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("request body is not valid gzip: {0}")]
    Gzip(String),
    /// The body cannot be split into events at all.
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("{field}: {reason}")]
    BadField { field: &'static str, reason: String },
    /// A single-event endpoint's only event was rejected, or every event of
    /// a batch was: the response lists them.
    #[error("no event accepted: {0}")]
    AllRejected(String),
    #[error("missing write key (HTTP Basic auth user, or writeKey in the body)")]
    MissingWriteKey,
    #[error("unknown write key")]
    UnknownWriteKey,
    #[error("over the in-flight limit of {limit} bytes while the stream catches up; retry later")]
    Overloaded { limit: usize },
    #[error("the stream did not take the events: {0}")]
    Stream(String),
    #[error("the collector is shutting down")]
    ShuttingDown,
    #[error("no such endpoint: {0}")]
    NotFound(String),
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl CollectorError {
    pub fn status(&self) -> StatusCode {
        match self {
            CollectorError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            CollectorError::BodyRead(_)
            | CollectorError::Gzip(_)
            | CollectorError::Json(_)
            | CollectorError::BadField { .. }
            | CollectorError::AllRejected(_) => StatusCode::BAD_REQUEST,
            CollectorError::MissingWriteKey | CollectorError::UnknownWriteKey => {
                StatusCode::UNAUTHORIZED
            }
            // 503 (not 500) for a failing stream too: client libraries retry
            // 5xx, and the events were not taken.
            CollectorError::Overloaded { .. }
            | CollectorError::Stream(_)
            | CollectorError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            CollectorError::NotFound(_) => StatusCode::NOT_FOUND,
            CollectorError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            CollectorError::Config(_) | CollectorError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            CollectorError::BodyTooLarge { .. } | CollectorError::Overloaded { .. } => {
                tonic::Code::ResourceExhausted
            }
            CollectorError::MissingWriteKey | CollectorError::UnknownWriteKey => {
                tonic::Code::Unauthenticated
            }
            CollectorError::Stream(_) | CollectorError::ShuttingDown => tonic::Code::Unavailable,
            CollectorError::Config(_) | CollectorError::Io(_) => tonic::Code::Internal,
            CollectorError::NotFound(_) | CollectorError::MethodNotAllowed(_) => {
                tonic::Code::Unimplemented
            }
            _ => tonic::Code::InvalidArgument,
        }
    }

    /// A short, stable label for the requests-refused metric.
    pub fn cause(&self) -> &'static str {
        match self {
            CollectorError::Config(_) => "config",
            CollectorError::BodyTooLarge { .. } => "body_too_large",
            CollectorError::BodyRead(_) => "body_read",
            CollectorError::Gzip(_) => "bad_gzip",
            CollectorError::Json(_) => "malformed_json",
            CollectorError::BadField { .. } => "bad_field",
            CollectorError::AllRejected(_) => "all_rejected",
            CollectorError::MissingWriteKey => "missing_write_key",
            CollectorError::UnknownWriteKey => "unknown_write_key",
            CollectorError::Overloaded { .. } => "overloaded",
            CollectorError::Stream(_) => "stream",
            CollectorError::ShuttingDown => "shutting_down",
            CollectorError::NotFound(_) => "not_found",
            CollectorError::MethodNotAllowed(_) => "method_not_allowed",
            CollectorError::Io(_) => "io",
        }
    }

    /// Seconds a client should wait before retrying, for 503s.
    pub fn retry_after(&self) -> Option<u32> {
        matches!(self.status(), StatusCode::SERVICE_UNAVAILABLE).then_some(1)
    }
}

impl From<CollectorError> for tonic::Status {
    fn from(error: CollectorError) -> Self {
        tonic::Status::new(error.grpc_code(), error.to_string())
    }
}
