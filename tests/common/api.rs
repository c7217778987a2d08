//! Typed calls to one agent's public HTTP API, for tests to read like the
//! requests they make: `api.produce("t", json!([...]))` rather than a
//! reqwest chain. Every call returns a [`Reply`]: status, headers, the raw
//! text and the body parsed as JSON (null when it is not JSON).

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// An agent's API at `base` (`http://127.0.0.1:port`).
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

/// One answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    /// The body, asserting the status.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        self.body
    }

    /// The body, asserting a 2xx status.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "{}: {}",
            self.status,
            self.text
        );
        self.body
    }

    /// The offsets a produce answer lists, in order.
    pub fn offsets(&self) -> Vec<i64> {
        self.body["offsets"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["offset"].as_i64()).collect())
            .unwrap_or_default()
    }

    /// The problem+json `type` code (`topic-not-found`…), if any.
    pub fn problem(&self) -> Option<&str> {
        self.body["type"]
            .as_str()?
            .strip_prefix("urn:streamhouse:problem:")
    }
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        Api {
            base: base.into(),
            client: super::client(),
        }
    }

    /// The API as a caller presenting `token` on every request.
    pub fn with_token(base: impl Into<String>, token: &str) -> Api {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header value"),
        );
        Api {
            base: base.into(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .default_headers(headers)
                .build()
                .expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request built by `build` from the client and the full URL;
    /// `Err` when no answer came (the agent is down, the request timed out).
    pub async fn try_send(
        &self,
        build: impl FnOnce(&reqwest::Client, String) -> reqwest::RequestBuilder,
        path: &str,
    ) -> Result<Reply, reqwest::Error> {
        let r = build(&self.client, self.url(path)).send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            text,
            body,
        })
    }

    /// Like [`Api::try_send`], failing the test when no answer comes.
    pub async fn send(
        &self,
        build: impl FnOnce(&reqwest::Client, String) -> reqwest::RequestBuilder,
        path: &str,
    ) -> Reply {
        self.try_send(build, path)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(|c, u| c.get(u), path).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(|c, u| c.post(u).json(body), path).await
    }

    /// POSTs `body` as it is, labelled `content_type`.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<String>) -> Reply {
        let body = body.into();
        self.send(
            |c, u| c.post(u).header("content-type", content_type).body(body),
            path,
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(|c, u| c.delete(u), path).await
    }

    pub async fn create_topic(&self, name: &str, partitions: u32) -> Reply {
        self.post(
            "/v1/topics",
            &json!({"name": name, "partitions": partitions}),
        )
        .await
    }

    pub async fn describe(&self, topic: &str) -> Reply {
        self.get(&format!("/v1/topics/{topic}")).await
    }

    /// Produces `records` (a JSON array of records) to `topic`.
    pub async fn produce(&self, topic: &str, records: Value) -> Reply {
        self.post(
            &format!("/v1/topics/{topic}/records"),
            &json!({ "records": records }),
        )
        .await
    }

    /// Produces `records` with an `Idempotency-Key`.
    pub async fn produce_keyed(&self, topic: &str, key: &str, records: Value) -> Reply {
        let body = json!({ "records": records });
        self.send(
            |c, u| c.post(u).header("idempotency-key", key).json(&body),
            &format!("/v1/topics/{topic}/records"),
        )
        .await
    }

    /// Reads a partition with `query` (`offset=0&limit=10`).
    pub async fn read(&self, topic: &str, partition: i64, query: &str) -> Reply {
        self.get(&format!(
            "/v1/topics/{topic}/partitions/{partition}/records?{query}"
        ))
        .await
    }

    /// A value in the agent's `/metrics`: the first line starting with
    /// `line_start` (0 when there is none).
    pub async fn metric(&self, line_start: &str) -> f64 {
        let text = self.get("/metrics").await.text;
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Every record of a partition from its log start to its high
    /// watermark, page by page.
    pub async fn read_all(&self, topic: &str, partition: i64) -> Vec<Value> {
        let first = self.read(topic, partition, "limit=1").await.expect(200);
        let start = first["log_start_offset"]
            .as_i64()
            .expect("log_start_offset");
        self.read_all_from(topic, partition, start).await
    }

    /// Every record of a partition from `offset` to its high watermark.
    pub async fn read_all_from(&self, topic: &str, partition: i64, offset: i64) -> Vec<Value> {
        let mut out = Vec::new();
        let mut offset = offset;
        loop {
            let page = self
                .read(topic, partition, &format!("offset={offset}&limit=10000"))
                .await
                .expect(200);
            out.extend(page["records"].as_array().cloned().unwrap_or_default());
            offset = page["next_offset"].as_i64().expect("next_offset");
            if offset >= page["high_watermark"].as_i64().expect("high_watermark") {
                return out;
            }
        }
    }

    /// Commits a group's offsets (a JSON array of `{topic, partition, offset}`).
    pub async fn commit(&self, group: &str, offsets: Value) -> Reply {
        self.post(
            &format!("/v1/groups/{group}/offsets"),
            &json!({ "offsets": offsets }),
        )
        .await
    }

    pub async fn group_offsets(&self, group: &str) -> Reply {
        self.get(&format!("/v1/groups/{group}/offsets")).await
    }

    pub async fn lag(&self, group: &str) -> Reply {
        self.get(&format!("/v1/groups/{group}/lag")).await
    }
}
