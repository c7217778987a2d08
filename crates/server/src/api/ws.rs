//! The WebSocket API at `/v1/ws`: subscribe, unsubscribe, produce, commit
//! and ping over one connection, as JSON text messages.
//!
//! Client messages carry `"type"`: `subscribe` {id?, topic, partitions?
//! (list or "all"), from?} or {id?, topic, group, session_timeout_ms?} (a
//! group member for the subscription's life: `assignment` messages on
//! changes, records carry `member_id` and `generation`), `unsubscribe`
//! {subscription}, `produce` {request_id?, topic, records}, `commit`
//! {request_id?, group, offsets, member_id?, generation?},
//! `auth` {request_id?, token}, `ping` {request_id?}. The server answers
//! `subscribed`, `unsubscribed`, `records`, `produced`, `committed`,
//! `authenticated`, `pong` and `error`. The caller's token (if the agent
//! authenticates) is checked per message against its scopes; the
//! connection closes with 4001 when the token expires or is revoked
//! unless an `auth` message replaced it. Every
//! subscription reads storage only when the connection's outgoing budget
//! (`--ws-max-buffered-bytes`) has room, so a slow client slows its own
//! subscriptions and costs bounded memory. A malformed message gets an
//! `error` message; a client that keeps sending them is disconnected.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::auth::BEARER_PROTOCOL;
use super::browser::check_ws_origin;
use super::error::{ApiError, ErrorCode};
use super::extract::{partition_of, resolve_topic};
use super::produce::{check_idempotency_key, fingerprint};
use super::records_in::parse_json;
use super::records_out::render_tagged;
use super::{AppState, paths};
use crate::auth::{Action, Caller, SessionEnd, StreamSlot};
use crate::groups::members::{FetchLimits, Fetcher, MemberView};
use crate::ingest::{Append, RequestKey};
use crate::model::Tenant;
use crate::read::follow::{Follower, StartAt};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Partitions {
    All(String),
    List(Vec<i64>),
}

/// A client message. Each kind is its own struct so that unknown fields are
/// refused and produce records stay byte-exact (borrowed, not re-encoded).
#[derive(Debug)]
enum ClientMessage<'a> {
    Subscribe {
        id: Option<String>,
        topic: String,
        partitions: Option<Partitions>,
        from: Option<String>,
        limit: Option<usize>,
        group: Option<String>,
        session_timeout_ms: Option<i64>,
    },
    Unsubscribe {
        subscription: String,
    },
    Produce {
        request_id: Option<String>,
        topic: String,
        records: &'a RawValue,
        idempotency_key: Option<String>,
    },
    Commit {
        request_id: Option<String>,
        group: String,
        offsets: Vec<super::groups::OffsetIn>,
        member_id: Option<String>,
        generation: Option<i64>,
    },
    Ping {
        request_id: Option<String>,
    },
    Auth {
        request_id: Option<String>,
        token: String,
    },
}

#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeMsg {
    #[serde(rename = "type")]
    _kind: String,
    id: Option<String>,
    topic: String,
    partitions: Option<Partitions>,
    from: Option<String>,
    limit: Option<usize>,
    group: Option<String>,
    session_timeout_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribeMsg {
    #[serde(rename = "type")]
    _kind: String,
    subscription: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceMsg<'a> {
    #[serde(rename = "type")]
    _kind: String,
    request_id: Option<String>,
    topic: String,
    #[serde(borrow)]
    records: &'a RawValue,
    idempotency_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitMsg {
    #[serde(rename = "type")]
    _kind: String,
    request_id: Option<String>,
    group: String,
    #[serde(deserialize_with = "super::json::objects")]
    offsets: Vec<super::groups::OffsetIn>,
    member_id: Option<String>,
    generation: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthMsg {
    #[serde(rename = "type")]
    _kind: String,
    request_id: Option<String>,
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PingMsg {
    #[serde(rename = "type")]
    _kind: String,
    request_id: Option<String>,
}

/// Longest `id`, `request_id` or `subscription` a client may send: each
/// is echoed back in answers.
const MAX_CLIENT_ID: usize = 255;

fn check_client_id(field: &str, id: Option<&str>) -> Result<(), ApiError> {
    match id {
        Some(id) if id.is_empty() || id.len() > MAX_CLIENT_ID => Err(ApiError::field(
            field,
            format!("{field} must be 1 to {MAX_CLIENT_ID} bytes"),
        )
        .with_limit(MAX_CLIENT_ID as u64)),
        _ => Ok(()),
    }
}

impl ClientMessage<'_> {
    /// Checks every field an answer echoes back, before anything is echoed.
    fn check(&self) -> Result<(), ApiError> {
        match self {
            ClientMessage::Subscribe {
                id, topic, group, ..
            } => {
                check_client_id("id", id.as_deref())?;
                if let Some(g) = group {
                    super::groups::validate_group(g)?;
                }
                super::topics::validate_topic_name(topic).map_err(|e| e.with_field("topic"))
            }
            ClientMessage::Unsubscribe { subscription } => {
                check_client_id("subscription", Some(subscription))
            }
            ClientMessage::Produce {
                request_id, topic, ..
            } => {
                check_client_id("request_id", request_id.as_deref())?;
                super::topics::validate_topic_name(topic).map_err(|e| e.with_field("topic"))
            }
            ClientMessage::Commit {
                request_id,
                group,
                member_id,
                ..
            } => {
                check_client_id("request_id", request_id.as_deref())?;
                check_client_id("member_id", member_id.as_deref())?;
                super::groups::validate_group(group)
            }
            ClientMessage::Ping { request_id } | ClientMessage::Auth { request_id, .. } => {
                check_client_id("request_id", request_id.as_deref())
            }
        }
    }
}

fn parse_message(text: &str) -> Result<ClientMessage<'_>, ApiError> {
    parse_shape(text)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("malformed message: {e}")))
}

fn parse_shape(text: &str) -> Result<ClientMessage<'_>, String> {
    let tag: Tag<'_> = super::json::from_object(text.as_bytes()).map_err(|e| e.to_string())?;
    let e = |e: serde_json::Error| e.to_string();
    Ok(match tag.kind.as_ref() {
        "subscribe" => {
            let m: SubscribeMsg = super::json::from_object(text.as_bytes()).map_err(e)?;
            ClientMessage::Subscribe {
                id: m.id,
                topic: m.topic,
                partitions: m.partitions,
                from: m.from,
                limit: m.limit,
                group: m.group,
                session_timeout_ms: m.session_timeout_ms,
            }
        }
        "unsubscribe" => {
            let m: UnsubscribeMsg = super::json::from_object(text.as_bytes()).map_err(e)?;
            ClientMessage::Unsubscribe {
                subscription: m.subscription,
            }
        }
        "produce" => {
            let m: ProduceMsg<'_> = super::json::from_object(text.as_bytes()).map_err(e)?;
            ClientMessage::Produce {
                request_id: m.request_id,
                topic: m.topic,
                records: m.records,
                idempotency_key: m.idempotency_key,
            }
        }
        "commit" => {
            let m: CommitMsg = super::json::from_object(text.as_bytes()).map_err(e)?;
            ClientMessage::Commit {
                request_id: m.request_id,
                group: m.group,
                offsets: m.offsets,
                member_id: m.member_id,
                generation: m.generation,
            }
        }
        "ping" => {
            let m: PingMsg = super::json::from_object(text.as_bytes()).map_err(e)?;
            ClientMessage::Ping {
                request_id: m.request_id,
            }
        }
        "auth" => {
            let m: AuthMsg = super::json::from_object(text.as_bytes()).map_err(e)?;
            ClientMessage::Auth {
                request_id: m.request_id,
                token: m.token,
            }
        }
        other => {
            return Err(format!(
                "unknown message type {other:?}; expected subscribe, unsubscribe, produce, commit, auth or ping"
            ));
        }
    })
}

/// One outgoing message and the budget it holds until written.
type Outgoing = (Message, Option<OwnedSemaphorePermit>);

/// Sends messages to the connection's writer within its byte budget.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    budget: Arc<Semaphore>,
    max: usize,
}

impl Outbox {
    /// Queues `text`, waiting while the connection is over its budget.
    async fn send(&self, text: String) -> bool {
        let cost = text.len().clamp(1, self.max) as u32;
        let Ok(permit) = self.budget.clone().acquire_many_owned(cost).await else {
            return false;
        };
        self.tx
            .send((Message::Text(Utf8Bytes::from(text)), Some(permit)))
            .await
            .is_ok()
    }

    async fn json(&self, v: Value) -> bool {
        self.send(v.to_string()).await
    }

    async fn error(
        &self,
        request_id: Option<&str>,
        subscription: Option<&str>,
        e: &ApiError,
    ) -> bool {
        let mut v = json!({
            "type": "error",
            "code": e.code.code(),
            "status": e.code.status().as_u16(),
            "message": e.detail,
        });
        if let Some(r) = request_id {
            v["request_id"] = json!(r);
        }
        if let Some(s) = subscription {
            v["subscription"] = json!(s);
        }
        if let Some(f) = &e.field {
            v["field"] = json!(f);
        }
        if let Some(l) = e.limit {
            v["limit"] = json!(l);
        }
        // A subscription that fell below the log start learns where to resume.
        if let Some((start, hw)) = e.range {
            v["log_start_offset"] = json!(start);
            v["high_watermark"] = json!(hw);
        }
        self.json(v).await
    }
}

/// Upgrade `/v1/ws` to a WebSocket speaking the JSON protocol above.
#[utoipa::path(get, path = paths::WS, tag = "live",
    description = "WebSocket. Client messages (JSON text, by `type`): \
`{\"type\":\"subscribe\",\"id\":\"s1\",\"topic\":\"t\",\"partitions\":\"all\"|[0,1],\"from\":\"earliest|latest|<offset>|ts:<ms>\"}`, \
`{\"type\":\"unsubscribe\",\"subscription\":\"s1\"}`, \
`{\"type\":\"produce\",\"request_id\":\"r1\",\"topic\":\"t\",\"records\":[...]}` (records as in POST .../records), \
`{\"type\":\"subscribe\",\"id\":\"s2\",\"topic\":\"t\",\"group\":\"g\",\"session_timeout_ms\":10000}` (a group member for the subscription's life; `assignment` messages on changes; records carry member_id and generation), \
`{\"type\":\"commit\",\"request_id\":\"c1\",\"group\":\"g\",\"offsets\":[{\"topic\":\"t\",\"partition\":0,\"offset\":5}],\"member_id\":\"…\",\"generation\":3}` (member_id and generation for a group with members), \
`{\"type\":\"auth\",\"token\":\"…\"}` (replace the token before it expires; at expiry the connection closes with code 4001), \
`{\"type\":\"ping\"}`. Server messages: `subscribed` {subscription, topic, partitions:[{partition, offset}]}, \
`records` {subscription, topic, partition, records, next_offset, high_watermark}, `unsubscribed`, \
`produced` {request_id, offsets}, `committed` {request_id, group, committed}, `authenticated` {request_id, expires_at}, `pong`, \
`error` {request_id?, subscription?, code, status, message, field?, limit?}.",
    responses((status = 101, description = "Switching protocols to WebSocket"),
              (status = 426, description = "Not a WebSocket handshake", body = super::Problem, content_type = "application/problem+json"),
              (status = 429, description = "The tenant's open_streams quota is used up; see Retry-After", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = check_ws_origin(&state.access, &headers) {
        return e.into_response();
    }
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let slot = match super::sse::open_slot(&state, &caller) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::new(
                ErrorCode::UpgradeRequired,
                format!("{}: /v1/ws speaks WebSocket only", e.body_text()),
            )
            .into_response();
        }
    };
    // A browser that offered subprotocols needs one chosen: ours, else the
    // one that carried its token.
    let offered_bearer = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| p.starts_with(BEARER_PROTOCOL))
        .map(str::to_string);
    let mut protocols = vec![std::borrow::Cow::Borrowed(PROTOCOL)];
    protocols.extend(offered_bearer.map(std::borrow::Cow::Owned));
    let limits = &state.limits;
    ws.protocols(protocols)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(limits.ws_max_buffered_bytes.max(64 * 1024) * 2)
        // Twice the limit: messages between the two get a friendly error.
        .max_message_size(limits.ws_max_message_bytes * 2)
        .max_frame_size(limits.ws_max_message_bytes * 2)
        .on_upgrade(move |socket| connection(state, caller, slot, socket))
}

/// The subprotocol name of this API, chosen when a client offers it.
const PROTOCOL: &str = "streamhouse.v1";

/// The end of a session whose token lapsed, as a future the connection
/// loop can wait on beside its messages.
fn session_of(
    state: &AppState,
    caller: &Caller,
) -> Pin<Box<dyn Future<Output = SessionEnd> + Send>> {
    let (auth, caller) = (state.auth.clone(), caller.clone());
    Box::pin(async move { auth.session_end(&caller).await })
}

/// Checks a replacement token: the same tenant, and scopes that still
/// cover every open subscription.
fn check_new_token<'a>(
    current: &Caller,
    new: &Caller,
    mut subscribed: impl Iterator<Item = &'a str>,
) -> Result<(), ApiError> {
    if new.tenant != current.tenant {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "a connection stays in one tenant; open a new connection for another",
        )
        .with_field("token"));
    }
    match subscribed.find(|t| !new.may(Action::Consume, t)) {
        Some(topic) => Err(super::auth::forbidden(Action::Consume, topic).with_field("token")),
        None => Ok(()),
    }
}

async fn connection(state: AppState, mut caller: Caller, _slot: StreamSlot, socket: WebSocket) {
    let mut session = session_of(&state, &caller);
    let _open = state.metrics.stream_opened();
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(256);
    let max = state.limits.ws_max_buffered_bytes;
    let outbox = Outbox {
        tx,
        budget: Arc::new(Semaphore::new(max)),
        max,
    };
    // The writer also pings the client every heartbeat: a quiet
    // subscription still moves bytes (the client pongs), so the idle
    // timeout only closes connections whose client is gone.
    let heartbeat = state.limits.sse_heartbeat;
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        loop {
            let (msg, permit) = tokio::select! {
                next = rx.recv() => match next {
                    Some(next) => next,
                    None => break,
                },
                _ = ping.tick() => (Message::Ping(Bytes::new()), None),
            };
            let close = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || close {
                break;
            }
            drop(permit);
        }
        let _ = sink.close().await;
    });

    // Each subscription's cancellation, how many partitions it follows, and its topic.
    let mut subs: HashMap<String, (CancellationToken, usize, String)> = HashMap::new();
    // Produce requests run beside the read loop; each holds a slot.
    let inflight = Arc::new(Semaphore::new(state.limits.ws_max_inflight_requests));
    let mut bad_in_a_row = 0u32;
    let mut next_id = 0u64;
    let close_reason = loop {
        let msg = tokio::select! {
            m = incoming.next() => m,
            _ = state.draining.cancelled() => break Some((1001, "the agent is shutting down; reconnect to resume")),
            end = &mut session => break Some(match end {
                SessionEnd::Expired => (4001, "token expired"),
                SessionEnd::Revoked => (4001, "token revoked"),
            }),
        };
        let text = match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                bad_in_a_row += 1;
                let e = ApiError::new(
                    ErrorCode::InvalidJson,
                    "send JSON text messages, not binary",
                );
                outbox.error(None, None, &e).await;
                if bad_in_a_row > state.limits.ws_max_bad_messages {
                    break Some((1008, "too many malformed messages"));
                }
                continue;
            }
        };
        if text.len() > state.limits.ws_max_message_bytes {
            bad_in_a_row += 1;
            let limit = state.limits.ws_max_message_bytes;
            let e = ApiError::too_large(
                "message",
                limit,
                format!("a message may be at most {limit} bytes (ws-max-message-bytes)"),
            );
            outbox.error(None, None, &e).await;
            if bad_in_a_row > state.limits.ws_max_bad_messages {
                break Some((1008, "too many malformed messages"));
            }
            continue;
        }
        let parsed = parse_message(&text).and_then(|m| m.check().map(|()| m));
        let msg = match parsed {
            Ok(m) => {
                bad_in_a_row = 0;
                m
            }
            Err(e) => {
                bad_in_a_row += 1;
                outbox.error(None, None, &e).await;
                if bad_in_a_row > state.limits.ws_max_bad_messages {
                    break Some((1008, "too many malformed messages"));
                }
                continue;
            }
        };
        match msg {
            ClientMessage::Subscribe {
                id,
                topic,
                partitions,
                from,
                limit,
                group,
                session_timeout_ms,
            } => {
                subs.retain(|_, (c, _, _)| !c.is_cancelled());
                if subs.len() >= state.limits.ws_max_subscriptions {
                    let max = state.limits.ws_max_subscriptions;
                    let e = ApiError::new(ErrorCode::PayloadTooLarge, format!("a connection may hold at most {max} subscriptions (ws-max-subscriptions)"))
                        .with_field("subscribe")
                        .with_limit(max as u64);
                    outbox.error(None, id.as_deref(), &e).await;
                    continue;
                }
                let id = id.unwrap_or_else(|| {
                    next_id += 1;
                    format!("s{next_id}")
                });
                if subs.contains_key(&id) {
                    let e = ApiError::field("id", format!("subscription {id:?} already exists"));
                    outbox.error(None, Some(&id), &e).await;
                    continue;
                }
                let followed: usize = subs.values().map(|(_, n, _)| n).sum();
                let room = state.limits.ws_max_partitions.saturating_sub(followed);
                if let Some(group) = group {
                    let ask = GroupAsk {
                        topic: &topic,
                        group: &group,
                        partitions: partitions.is_some(),
                        from: from.is_some(),
                        limit,
                        session_timeout_ms,
                        room,
                    };
                    match subscribe_group(&state, &caller, ask).await {
                        Ok((member, count, limit)) => {
                            outbox.json(json!({"type": "subscribed", "subscription": id, "topic": topic,
                                "group": group, "member_id": member.member_id, "generation": member.generation,
                                "partitions": assigned_json(&member.assignment)})).await;
                            let cancel = CancellationToken::new();
                            subs.insert(id.clone(), (cancel.clone(), count, topic.clone()));
                            tokio::spawn(follow_group(
                                state.clone(),
                                GroupFollow {
                                    caller: caller.clone(),
                                    tenant: caller.tenant.as_str().to_string(),
                                    group,
                                    member,
                                    limit,
                                },
                                id,
                                outbox.clone(),
                                cancel,
                            ));
                        }
                        Err(e) => {
                            outbox.error(None, Some(&id), &e).await;
                        }
                    }
                    continue;
                }
                let asked = SubscribeAsk {
                    topic: &topic,
                    partitions,
                    from: from.as_deref(),
                    limit,
                    room,
                };
                match subscribe(&state, &caller, asked).await {
                    Ok(follower) => {
                        let count = follower.positions().count();
                        let positions: Vec<Value> = follower
                            .positions()
                            .map(|(_, p, o)| json!({"partition": p, "offset": o}))
                            .collect();
                        outbox.json(json!({"type": "subscribed", "subscription": id, "topic": topic, "partitions": positions})).await;
                        let cancel = CancellationToken::new();
                        subs.insert(id.clone(), (cancel.clone(), count, topic.clone()));
                        tokio::spawn(follow(
                            follower,
                            id,
                            outbox.clone(),
                            cancel,
                            state.draining.clone(),
                        ));
                    }
                    Err(e) => {
                        outbox.error(None, Some(&id), &e).await;
                    }
                }
            }
            ClientMessage::Unsubscribe { subscription } => match subs.remove(&subscription) {
                Some((cancel, _, _)) => {
                    cancel.cancel();
                    outbox
                        .json(json!({"type": "unsubscribed", "subscription": subscription}))
                        .await;
                }
                None => {
                    let e = ApiError::field(
                        "subscription",
                        format!("no subscription {subscription:?}"),
                    );
                    outbox.error(None, Some(&subscription), &e).await;
                }
            },
            ClientMessage::Produce {
                request_id,
                topic,
                records,
                idempotency_key,
            } => {
                // Produce runs beside the read loop so a slow commit does not
                // hold up other messages; a connection has a few at once.
                let Ok(slot) = inflight.clone().try_acquire_owned() else {
                    let max = state.limits.ws_max_inflight_requests;
                    let e = ApiError::new(
                        ErrorCode::Overloaded,
                        format!("a connection may have {max} requests in flight (ws-max-inflight-requests); wait for an answer"),
                    )
                    .with_limit(max as u64);
                    outbox.error(request_id.as_deref(), None, &e).await;
                    continue;
                };
                if let Err(e) = super::auth::require(&caller, Action::Produce, &topic) {
                    outbox
                        .error(request_id.as_deref(), None, &e.with_field("topic"))
                        .await;
                    continue;
                }
                let (state, tenant, outbox) =
                    (state.clone(), caller.tenant.clone(), outbox.clone());
                let body = Bytes::from(format!("{{\"records\":{}}}", records.get()));
                tokio::spawn(async move {
                    let _slot = slot;
                    match produce(&state, tenant, topic, &body, idempotency_key).await {
                        Ok(offsets) => outbox.json(json!({"type": "produced", "request_id": request_id, "offsets": offsets})).await,
                        Err(e) => outbox.error(request_id.as_deref(), None, &e).await,
                    };
                });
            }
            ClientMessage::Commit {
                request_id,
                group,
                offsets,
                member_id,
                generation,
            } => {
                if let Err(e) = super::auth::require(&caller, Action::Commit, &group) {
                    outbox
                        .error(request_id.as_deref(), None, &e.with_field("group"))
                        .await;
                    continue;
                }
                let by = match (member_id.as_deref(), generation) {
                    (None, None) => Ok(crate::groups::Committer::Plain),
                    (Some(id), Some(generation)) => {
                        Ok(crate::groups::Committer::Member { id, generation })
                    }
                    (Some(_), None) => Err(ApiError::field(
                        "generation",
                        "a commit naming member_id must name its generation",
                    )),
                    (None, Some(_)) => Err(ApiError::field(
                        "member_id",
                        "a commit naming a generation must name member_id",
                    )),
                };
                let done = match by {
                    Ok(by) => commit(&state, &caller.tenant, &group, offsets, by).await,
                    Err(e) => Err(e),
                };
                match done {
                    Ok(n) => outbox.json(json!({"type": "committed", "request_id": request_id, "group": group, "committed": n})).await,
                    Err(e) => outbox.error(request_id.as_deref(), None, &e).await,
                };
            }
            ClientMessage::Ping { request_id } => {
                outbox
                    .json(json!({"type": "pong", "request_id": request_id}))
                    .await;
            }
            ClientMessage::Auth { request_id, token } => {
                subs.retain(|_, (c, _, _)| !c.is_cancelled());
                let checked = state
                    .auth
                    .authenticate(Some(&token))
                    .map_err(|e| ApiError::from(e).with_field("token"))
                    .and_then(|new| {
                        check_new_token(&caller, &new, subs.values().map(|(_, _, t)| t.as_str()))
                            .map(|()| new)
                    });
                match checked {
                    Ok(new) => {
                        outbox.json(json!({"type": "authenticated", "request_id": request_id, "expires_at": new.expires_at})).await;
                        session = session_of(&state, &new);
                        caller = new;
                    }
                    Err(e) => {
                        outbox.error(request_id.as_deref(), None, &e).await;
                    }
                }
            }
        }
    };
    for (cancel, _, _) in subs.into_values() {
        cancel.cancel();
    }
    if let Some((code, reason)) = close_reason {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = outbox.tx.send((Message::Close(Some(frame)), None)).await;
    }
    drop(outbox);
    let _ = writer.await;
}

/// What a `subscribe` message asks for, and the room the connection has.
struct SubscribeAsk<'a> {
    topic: &'a str,
    partitions: Option<Partitions>,
    from: Option<&'a str>,
    limit: Option<usize>,
    /// Partitions this connection may still follow.
    room: usize,
}

async fn subscribe(
    state: &AppState,
    caller: &Caller,
    ask: SubscribeAsk<'_>,
) -> Result<Follower, ApiError> {
    let SubscribeAsk {
        topic: name,
        partitions,
        from,
        limit,
        room,
    } = ask;
    super::auth::require(caller, Action::Consume, name).map_err(|e| e.with_field("topic"))?;
    let topic = resolve_topic(state, &caller.tenant, name)
        .await
        .map_err(|e| e.with_field("topic"))?;
    let list: Vec<i32> = match partitions {
        None => (0..topic.partition_count).collect(),
        Some(Partitions::All(s)) if s == "all" => (0..topic.partition_count).collect(),
        Some(Partitions::All(s)) => {
            return Err(ApiError::field(
                "partitions",
                format!("partitions must be \"all\" or a list of numbers, not {s:?}"),
            ));
        }
        Some(Partitions::List(l)) => {
            let mut out = Vec::with_capacity(l.len());
            for p in l {
                out.push(partition_of(&topic, p).map_err(|e| e.with_field("partitions"))?);
            }
            out.sort_unstable();
            out.dedup();
            out
        }
    };
    if list.len() > room {
        let max = state.limits.ws_max_partitions;
        return Err(ApiError::too_large(
            "partitions",
            max,
            format!("a connection may follow at most {max} partitions (ws-max-partitions)"),
        ));
    }
    let at = match from {
        None => StartAt::Latest,
        Some(s) => StartAt::parse(s).ok_or_else(|| {
            ApiError::field(
                "from",
                format!("from={s:?} must be earliest, latest, an offset, or ts:<millis>"),
            )
        })?,
    };
    let limit = limit
        .unwrap_or(1000)
        .clamp(1, crate::config::MAX_READ_RECORDS);
    let starts = list.into_iter().map(|p| (topic.clone(), p, at)).collect();
    Ok(Follower::new(
        state.reader.clone(),
        &state.watermarks,
        starts,
        limit,
        1 << 20,
    )
    .await?)
}

/// Delivers one subscription until it is cancelled or its topic goes away.
async fn follow(
    mut follower: Follower,
    id: String,
    outbox: Outbox,
    cancel: CancellationToken,
    draining: CancellationToken,
) {
    // However this subscription ends, it stops counting against the
    // connection's limits.
    let _ended = cancel.clone().drop_guard();
    loop {
        let batch = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = draining.cancelled() => return,
            b = follower.next() => b,
        };
        match batch {
            Ok(b) => {
                let body = render_tagged(
                    &[
                        ("type", "records".into()),
                        ("subscription", id.as_str().into()),
                    ],
                    &b.topic.name,
                    b.partition,
                    &b.records,
                    b.next_offset,
                    b.high_watermark,
                    0,
                );
                if !outbox
                    .send(String::from_utf8_lossy(&body).into_owned())
                    .await
                {
                    return;
                }
            }
            Err(e) => {
                outbox.error(None, Some(&id), &ApiError::from(e)).await;
                return;
            }
        }
    }
}

async fn produce(
    state: &AppState,
    tenant: Tenant,
    topic: String,
    body: &Bytes,
    key: Option<String>,
) -> Result<Vec<Value>, ApiError> {
    if let Some(k) = &key {
        check_idempotency_key(k, "idempotency_key")?;
    }
    state
        .quotas
        .produce(tenant.as_str(), body.len())
        .map_err(|e| super::auth::over_quota(state, tenant.as_str(), e))?;
    let records = parse_json(body, &state.limits, state.clock.now_ms())?;
    let idempotency = key.map(|key| RequestKey {
        fingerprint: fingerprint(&[b"records:json", body]),
        key,
    });
    let produced = state
        .ingest
        .append(Append {
            tenant,
            topic: topic.into(),
            records,
            idempotency,
            held_bytes: body.len(),
        })
        .await
        .map_err(|e| {
            let api = ApiError::from(e);
            if api.code == ErrorCode::TopicNotFound {
                api.with_field("topic")
            } else {
                api
            }
        })?;
    Ok(produced
        .offsets
        .iter()
        .map(|o| json!({"partition": o.partition, "offset": o.offset}))
        .collect())
}

async fn commit(
    state: &AppState,
    tenant: &Tenant,
    group: &str,
    offsets: Vec<super::groups::OffsetIn>,
    by: crate::groups::Committer<'_>,
) -> Result<usize, ApiError> {
    super::groups::validate_group(group)?;
    let entries = super::groups::offset_entries(offsets)?;
    state
        .groups
        .commit(tenant.as_str(), group, &entries, by)
        .await?;
    Ok(entries.len())
}

/// What a `subscribe` with a `group` asks for.
struct GroupAsk<'a> {
    topic: &'a str,
    group: &'a str,
    /// A group chooses the partitions and positions: these must be absent.
    partitions: bool,
    from: bool,
    limit: Option<usize>,
    session_timeout_ms: Option<i64>,
    room: usize,
}

/// Joins the group for the subscription: the member, the partitions it
/// counts against the connection, and its records limit.
async fn subscribe_group(
    state: &AppState,
    caller: &Caller,
    ask: GroupAsk<'_>,
) -> Result<(MemberView, usize, usize), ApiError> {
    super::auth::require(caller, Action::Consume, ask.topic).map_err(|e| e.with_field("topic"))?;
    super::auth::require(caller, Action::Commit, ask.group).map_err(|e| e.with_field("group"))?;
    if ask.partitions || ask.from {
        return Err(ApiError::field(
            "group",
            "a group subscription takes no partitions or from: the group assigns partitions and positions",
        ));
    }
    let topic = resolve_topic(state, &caller.tenant, ask.topic)
        .await
        .map_err(|e| e.with_field("topic"))?;
    let count = topic.partition_count as usize;
    if count > ask.room {
        let max = state.limits.ws_max_partitions;
        return Err(ApiError::too_large(
            "partitions",
            max,
            format!("a connection may follow at most {max} partitions (ws-max-partitions)"),
        ));
    }
    let spec = super::members::join_spec(
        caller,
        vec![topic.name.clone()],
        ask.session_timeout_ms.unwrap_or(10_000),
        None,
        ErrorCode::InvalidField,
    )?;
    let member = state
        .groups
        .join(caller.tenant.as_str(), ask.group, &spec)
        .await?;
    let limit = ask
        .limit
        .unwrap_or(1000)
        .clamp(1, crate::config::MAX_READ_RECORDS);
    Ok((member, count, limit))
}

fn assigned_json(list: &[crate::groups::members::Assigned]) -> Vec<Value> {
    list.iter()
        .map(|a| json!({"topic": a.topic, "partition": a.partition, "offset": a.offset}))
        .collect()
}

/// A group subscription's member.
struct GroupFollow {
    /// Who subscribed (the member reads only what it may).
    caller: Caller,
    tenant: String,
    group: String,
    member: MemberView,
    limit: usize,
}

/// Fetches for a group subscription's member until it is cancelled, then
/// leaves the group (its partitions move at once).
async fn follow_group(
    state: AppState,
    g: GroupFollow,
    id: String,
    outbox: Outbox,
    cancel: CancellationToken,
) {
    let _ended = cancel.clone().drop_guard();
    let member_id = g.member.member_id.clone();
    let wait =
        std::time::Duration::from_millis((g.member.session_timeout_ms / 3).min(5_000) as u64);
    let limits = FetchLimits {
        max_records: g.limit,
        max_bytes: 1 << 20,
        wait,
    };
    let mut sent = g.member.generation;
    let caller = g.caller.clone();
    let may_consume = move |t: &str| caller.may(Action::Consume, t);
    loop {
        let fetched = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = state.draining.cancelled() => break,
            f = state.groups.fetch_records(&g.tenant, &g.group, &member_id, Fetcher {
                may_consume: &may_consume,
                generation: Some(0),
                epoch: None,
                rewind: false,
            }, limits) => f,
        };
        let f = match fetched {
            Ok(f) => f,
            Err(e) => {
                outbox.error(None, Some(&id), &ApiError::from(e)).await;
                break;
            }
        };
        if f.view.generation != sent {
            sent = f.view.generation;
            let msg = json!({"type": "assignment", "subscription": id, "group": g.group,
                "member_id": member_id, "generation": sent,
                "partitions": assigned_json(&f.view.assignment),
                "revoking": assigned_json(&f.view.revoking)});
            if !outbox.json(msg).await {
                break;
            }
        }
        for b in &f.batches {
            let body = b.render(&[
                ("type", "records".into()),
                ("subscription", id.as_str().into()),
                ("member_id", member_id.as_str().into()),
                ("generation", f.view.generation.into()),
            ]);
            if !outbox
                .send(String::from_utf8_lossy(&body).into_owned())
                .await
            {
                cancel.cancel();
                break;
            }
        }
    }
    let _ = state.groups.leave(&g.tenant, &g.group, &member_id).await;
}
