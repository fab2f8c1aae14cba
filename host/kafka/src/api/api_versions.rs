//! ApiVersions: exactly the table in `versions`.

use super::Ctx;
use crate::versions::SUPPORTED;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

fn table() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub(super) fn handle(_ctx: &Ctx, _version: i16, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(table())
}

/// The answer to an ApiVersions request at a version this broker does not implement: a v0
/// response (which every client can read) with `UNSUPPORTED_VERSION` and the table, so the
/// client retries at a version it finds there (KIP-511).
pub(crate) fn unsupported_api_versions() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(table())
}
