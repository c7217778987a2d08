//! The OpenAPI description (generated from the handlers) and `/docs`.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::{groups, ops, produce, read, records_out, topics, ws};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StreamHouse",
        description = "S3-native HTTP streaming. Produce records to topics over REST; read them by offset. \
                       Errors are application/problem+json with a stable `type` per kind \
                       (`urn:streamhouse:problem:<code>`)."
    ),
    paths(
        topics::create, topics::list, topics::describe, topics::delete,
        produce::produce, produce::publish,
        read::read, read::offsets, read::topic_stream, read::multi_stream, ws::upgrade,
        groups::commit, groups::fetch, groups::lag,
        ops::healthz, ops::readyz, ops::metrics,
    ),
    components(schemas(
        super::Problem, records_out::ReadResponse, records_out::OutRecord, records_out::OutHeader,
        records_out::ValueEncoding,
    )),
    tags(
        (name = "topics", description = "Create, list, describe and delete topics"),
        (name = "records", description = "Produce and read records"),
        (name = "live", description = "Follow topics live: Server-Sent Events and WebSocket"),
        (name = "groups", description = "Consumer-group offsets and lag"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
struct ApiDoc;

/// The OpenAPI 3.1 description, pretty-printed, as checked in at `openapi/openapi.json`.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        + "\n"
}

/// `/docs` (Swagger UI, served from the binary) and `/openapi.json`.
pub(super) fn router() -> Router {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
