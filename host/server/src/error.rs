//! The one place where errors become gRPC statuses: the `Status` of a failed call, and the
//! `distlog.v1.Error` a ProduceStream answer carries for a failed request.

use distlog_broker::BrokerError;
use thiserror::Error;
use tonic::{Code, Status};

/// Why a call failed. Converted to a [`Status`] by the `From` impl below and nowhere else.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The broker refused or failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The request is malformed (negative offsets, missing fields...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request or a record is over a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The call is not available in this configuration.
    #[error("{0}")]
    FailedPrecondition(String),
    /// No credentials on an admin call.
    #[error("{0}")]
    Unauthenticated(String),
    /// Wrong credentials on an admin call.
    #[error("{0}")]
    PermissionDenied(String),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A bug or an unexpected runtime failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The transport's own status for a message over the size limit (OUT_OF_RANGE in tonic),
    /// as the RESOURCE_EXHAUSTED every other size limit gives; `None` for any other status.
    pub fn from_transport_status(status: &Status) -> Option<Self> {
        (status.code() == Code::OutOfRange && status.message().contains("message length too large"))
            .then(|| Self::TooLarge(format!("request too large: {}", status.message())))
    }

    /// The status code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            Self::Broker(e) => broker_code(e),
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::TooLarge(_) => Code::ResourceExhausted,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::ShuttingDown => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }
}

fn broker_code(e: &BrokerError) -> Code {
    match e {
        BrokerError::TopicNotFound(_)
        | BrokerError::PartitionNotFound { .. }
        | BrokerError::GroupNotFound(_)
        | BrokerError::PluginNotFound(_) => Code::NotFound,
        BrokerError::TopicExists(_) | BrokerError::PluginExists(_) => Code::AlreadyExists,
        BrokerError::InvalidPlugin(_) => Code::InvalidArgument,
        BrokerError::PluginInUse { .. } | BrokerError::PluginsDisabled => Code::FailedPrecondition,
        BrokerError::InvalidName { .. }
        | BrokerError::InvalidPartitionCount { .. }
        | BrokerError::InvalidConfig { .. }
        | BrokerError::UnusablePlugin(_)
        | BrokerError::InvalidArgument(_)
        | BrokerError::Empty(_) => Code::InvalidArgument,
        BrokerError::RecordTooLarge { .. } | BrokerError::BatchTooLarge { .. } => {
            Code::ResourceExhausted
        }
        BrokerError::OffsetOutOfRange { .. } | BrokerError::CommitBeyondLogEnd { .. } => {
            Code::OutOfRange
        }
        BrokerError::FailedPrecondition(_) | BrokerError::Producer { .. } => {
            Code::FailedPrecondition
        }
        BrokerError::ShuttingDown | BrokerError::NoSpace(_) | BrokerError::LogFailed { .. } => {
            Code::Unavailable
        }
        BrokerError::DataLoss { .. } | BrokerError::Corrupt { .. } => Code::DataLoss,
        _ => Code::Internal,
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let code = e.code();
        if code == Code::Internal {
            tracing::error!(error = %e, "internal error");
        }
        Status::new(code, e.to_string())
    }
}

/// The same code and message as the [`Status`], for an error carried inside a streamed
/// answer (ProduceStream) rather than ending the call.
impl From<ApiError> for crate::proto::Error {
    fn from(e: ApiError) -> Self {
        let status = Status::from(e);
        Self {
            code: status.code() as i32,
            message: status.message().to_owned(),
        }
    }
}
