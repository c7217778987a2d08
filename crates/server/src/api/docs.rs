//! The OpenAPI description (generated from the handlers) and `/docs`.

use axum::Router;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{
    group_stream, groups, members, ops, peer, produce, read, records_out, snapshot, subscriptions,
    tokens, topics, trim, ws,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StreamHouse",
        description = "S3-native HTTP streaming. Produce records to topics over REST; read them by offset. \
                       Errors are application/problem+json with a stable `type` per kind \
                       (`urn:streamhouse:problem:<code>`)."
    ),
    paths(
        topics::create, topics::list, topics::describe, topics::configure, topics::delete,
        trim::trim, snapshot::snapshot,
        produce::produce, produce::publish,
        read::read, read::offsets, read::topic_stream, read::multi_stream, ws::upgrade,
        groups::list, groups::commit, groups::fetch, groups::lag,
        members::describe, members::delete, members::join, members::heartbeat, members::leave,
        members::fetch, members::reset, group_stream::stream,
        subscriptions::create, subscriptions::list, subscriptions::describe, subscriptions::pause,
        subscriptions::resume, subscriptions::delete,
        tokens::revoke, tokens::whoami,
        ops::healthz, ops::readyz, ops::metrics, peer::object,
    ),
    components(schemas(
        super::Problem, records_out::ReadResponse, records_out::OutRecord, records_out::OutHeader,
        records_out::ValueEncoding,
    )),
    modifiers(&Shared),
    tags(
        (name = "topics", description = "Create, list, describe and delete topics"),
        (name = "records", description = "Produce and read records"),
        (name = "live", description = "Follow topics live: Server-Sent Events and WebSocket"),
        (name = "groups", description = "Consumer groups: members, assignment, fenced offsets and lag"),
        (name = "subscriptions", description = "Push delivery of a topic to a webhook, signed, at least once"),
        (name = "admin", description = "The caller's token, and token revocation"),
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

/// What every operation shares, written once: the bearer scheme (the
/// peer scheme for the one route between agents), the
/// schemas of the path parameters (`topic`, `partition`, `group`) and the
/// answers any route can give (400 for a bad parameter or a request that
/// is not HTTP, 401/403 for a missing token or scope, 414 and 431 for a
/// request target or head beyond the HTTP parser's limits, 415 for a body
/// that is not JSON, 421 for a `Host` the agent does not answer, 503 when
/// the agent refuses the connection or is shutting down).
struct Shared;

impl Modify for Shared {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "With --auth jwt: a JWT naming sub, tenant and scopes (\"produce:orders.*\"). \
                         Streams also take ?access_token=, WebSocket the subprotocol bearer.<token>.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "peer",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::peer::HEADER,
                "Agent to agent: `<expiry ms>.<hex HMAC-SHA256>` keyed by --peer-secret",
            ))),
        );
        for (path, item) in api.paths.paths.iter_mut() {
            let probe = path == super::paths::HEALTHZ || path == super::paths::READYZ;
            let between_agents = path == super::paths::PEER_OBJECT;
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                if between_agents {
                    op.security =
                        Some(vec![SecurityRequirement::new("peer", Vec::<String>::new())]);
                } else if !probe {
                    // A token is needed with --auth jwt, not without.
                    op.security = Some(vec![
                        SecurityRequirement::new("bearer", Vec::<String>::new()),
                        SecurityRequirement::default(),
                    ]);
                    let answers = &mut op.responses.responses;
                    answers.entry("401".into()).or_insert_with(|| {
                        problem(
                            "With --auth jwt: no token, or one that is expired, revoked or invalid",
                        )
                    });
                    answers.entry("403".into()).or_insert_with(|| {
                        problem(
                            "The token's scopes do not allow this action on this topic or group",
                        )
                    });
                }
                if op.request_body.is_some() {
                    op.responses.responses.entry("415".into()).or_insert_with(|| {
                        problem("The body is not declared as JSON (or NDJSON; publish: not a form type)")
                    });
                }
                // The HTTP parser refuses these before any route runs; the
                // agent answers them with problem documents (`bare.rs`).
                op.responses
                    .responses
                    .entry("414".into())
                    .or_insert_with(|| problem("The request target is longer than 65,534 bytes"));
                op.responses.responses.entry("431".into()).or_insert_with(|| {
                    problem("The request head is larger than 417,792 bytes or has more than 100 header fields")
                });
                op.responses.responses.entry("421".into()).or_insert_with(|| {
                    problem("The Host header names a host this agent does not answer (allowed-hosts)")
                });
                let mut takes_input = op.request_body.is_some();
                for p in op.parameters.iter_mut().flatten() {
                    takes_input = true;
                    if p.parameter_in == ParameterIn::Path
                        && let Some(schema) = path_schema(&p.name)
                    {
                        p.schema = Some(schema.into());
                    }
                }
                let answers = &mut op.responses.responses;
                answers.entry("400".into()).or_insert_with(|| {
                    problem(if takes_input {
                        "Invalid parameter or body, or a request that is not valid HTTP/1.1"
                    } else {
                        "The request is not valid HTTP/1.1"
                    })
                });
                answers.entry("503".into()).or_insert_with(|| {
                    problem("Too many connections (max-connections), or the agent is shutting down")
                });
            }
        }
    }
}

fn path_schema(name: &str) -> Option<Object> {
    let text = |pattern: &str, max: usize| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .min_length(Some(1))
            .max_length(Some(max))
            .build()
    };
    match name {
        "topic" => Some(text(TOPIC_PATTERN, 249)),
        "group" => Some(text(GROUP_PATTERN, 255)),
        "member" => Some(text(MEMBER_PATTERN, 64)),
        "name" => Some(text(SUBSCRIPTION_PATTERN, 200)),
        "partition" => Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                .minimum(Some(0))
                .build(),
        ),
        _ => None,
    }
}

/// A topic name: 1 to 249 of `A-Z a-z 0-9 . _ -` (`.` and `..` are refused too).
const TOPIC_PATTERN: &str = "^[A-Za-z0-9._-]{1,249}$";
/// A consumer-group name: 1 to 255 of `A-Z a-z 0-9 . _ -`.
const GROUP_PATTERN: &str = "^[A-Za-z0-9._-]{1,255}$";

/// A group member's id (as join returns it).
const MEMBER_PATTERN: &str = "^[A-Za-z0-9-]{1,64}$";

/// A subscription's name: 1 to 200 of `A-Z a-z 0-9 . _ -`.
const SUBSCRIPTION_PATTERN: &str = "^[A-Za-z0-9._-]{1,200}$";

fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}
