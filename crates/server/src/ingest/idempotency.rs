//! Idempotency keys on this agent: requests in flight, and the record.
//!
//! A request with a key first waits for any request with the same key in
//! flight on this agent, then looks for the key's record in the metadata
//! store; only if neither exists does it go into the buffer, owning the key
//! until the flush answers it — even when its producer stopped waiting
//! (a timed-out client), so the retry joins the buffered original instead
//! of putting a second copy of the key into a flush. Across agents the
//! record itself decides: the flush commit records the key, and a commit
//! that finds it already recorded is abandoned (see `flush`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use uuid::Uuid;

use super::{IdempotencyKey, ProduceError, Produced};

type Slot = (String, Uuid, String);
type Outcome = Option<Result<Produced, ProduceError>>;

#[derive(Debug)]
struct InFlight {
    fingerprint: String,
    result: watch::Sender<Outcome>,
}

/// Keys of requests buffered or flushing on this agent.
#[derive(Debug, Default)]
pub(super) struct KeysInFlight {
    map: Mutex<HashMap<Slot, Arc<InFlight>>>,
}

/// What to do with a keyed request.
pub(super) enum Claim {
    /// This request owns the key: produce it, then settle the guard.
    Owned(KeyGuard),
    /// Another request with the key finished: this is its answer.
    Answered(Result<Produced, ProduceError>),
}

/// Ownership of a key in flight; publishes the result to waiters and frees
/// the key when settled or dropped.
#[derive(Debug)]
pub(super) struct KeyGuard {
    keys: Arc<KeysInFlight>,
    slot: Slot,
    entry: Arc<InFlight>,
    settled: bool,
}

impl KeyGuard {
    pub(super) fn settle(mut self, result: &Result<Produced, ProduceError>) {
        self.settled = true;
        let shared = result.clone().map(|mut p| {
            p.replayed = true;
            p
        });
        self.entry.result.send_replace(Some(shared));
        self.release();
    }

    fn release(&self) {
        let mut map = self.keys.map.lock().unwrap_or_else(|e| e.into_inner());
        if map
            .get(&self.slot)
            .is_some_and(|e| Arc::ptr_eq(e, &self.entry))
        {
            map.remove(&self.slot);
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.entry
                .result
                .send_replace(Some(Err(ProduceError::Unavailable(
                    "the first request with this key was abandoned".into(),
                ))));
            self.release();
        }
    }
}

impl KeysInFlight {
    /// Claims `key` for a request to `topic_id`, or waits for the request
    /// that holds it and returns that request's answer.
    pub(super) async fn claim(self: &Arc<Self>, topic_id: Uuid, key: &IdempotencyKey) -> Claim {
        let slot = (key.tenant.clone(), topic_id, key.key.clone());
        let waiting = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&slot) {
                Some(entry) => entry.clone(),
                None => {
                    let entry = Arc::new(InFlight {
                        fingerprint: key.fingerprint.clone(),
                        result: watch::Sender::new(None),
                    });
                    map.insert(slot.clone(), entry.clone());
                    return Claim::Owned(KeyGuard {
                        keys: self.clone(),
                        slot,
                        entry,
                        settled: false,
                    });
                }
            }
        };
        if waiting.fingerprint != key.fingerprint {
            return Claim::Answered(Err(ProduceError::KeyReused(key.key.clone())));
        }
        let mut rx = waiting.result.subscribe();
        let answer = match rx.wait_for(Option::is_some).await {
            Ok(v) => v
                .clone()
                .unwrap_or_else(|| Err(ProduceError::Unavailable("no answer".into()))),
            Err(_) => Err(ProduceError::Unavailable(
                "the first request with this key was abandoned".into(),
            )),
        };
        Claim::Answered(answer)
    }
}
