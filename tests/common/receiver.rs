//! A webhook receiver in the test process: it checks every delivery's
//! signature, records what arrived, and answers as the test tells it
//! (succeed, fail, hang past the agent's timeout, or ask to retry later).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How the receiver answers the next deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Ok = 0,
    Fail = 1,
    Hang = 2,
    RetryLater = 3,
}

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub partition: i64,
    pub offsets: Vec<i64>,
    pub values: Vec<Value>,
    pub id: String,
    pub acked: bool,
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    deliveries: Vec<Delivery>,
    bad_signatures: usize,
}

#[derive(Clone)]
struct Shared {
    secret: String,
    mode: Arc<AtomicU8>,
    inner: Arc<Mutex<Inner>>,
}

pub struct Receiver {
    pub url: String,
    shared: Shared,
    _server: tokio::task::JoinHandle<()>,
}

fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(sig) = headers
        .get("streamhouse-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((t, v1)) = sig
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == v1
}

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !verify(&s.secret, &headers, &body) {
        s.inner.lock().unwrap().bad_signatures += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mode = s.mode.load(Ordering::SeqCst);
    if mode == Mode::Hang as u8 {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    let records = v["records"].as_array().unwrap();
    let acked = mode == Mode::Ok as u8;
    s.inner.lock().unwrap().deliveries.push(Delivery {
        partition: v["partition"].as_i64().unwrap(),
        offsets: records
            .iter()
            .map(|r| r["offset"].as_i64().unwrap())
            .collect(),
        values: records.iter().map(|r| r["value"].clone()).collect(),
        id: headers
            .get("streamhouse-delivery-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        acked,
        at: Instant::now(),
    });
    match mode {
        0 => StatusCode::NO_CONTENT.into_response(),
        3 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

impl Receiver {
    pub async fn start(secret: &str) -> Receiver {
        let shared = Shared {
            secret: secret.to_string(),
            mode: Arc::new(AtomicU8::new(Mode::Ok as u8)),
            inner: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            shared,
            _server: server,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.inner.lock().unwrap().deliveries.clone()
    }

    pub fn bad_signatures(&self) -> usize {
        self.shared.inner.lock().unwrap().bad_signatures
    }

    /// Distinct offsets acknowledged, per partition.
    pub fn acked_offsets(
        &self,
    ) -> std::collections::BTreeMap<i64, std::collections::BTreeSet<i64>> {
        let mut out: std::collections::BTreeMap<i64, std::collections::BTreeSet<i64>> =
            Default::default();
        for d in self.deliveries().iter().filter(|d| d.acked) {
            out.entry(d.partition).or_default().extend(&d.offsets);
        }
        out
    }
}
