//! One agent's public HTTP API as the CLI calls it: base URL, bearer
//! token, and answers turned into values or errors that carry the
//! problem+json `detail`.

use clap::Args;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use crate::CliError;

/// Where the agent is and who is calling; on every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Agent base URL.
    #[arg(
        long,
        env = "STREAMHOUSE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Bearer token (for agents run with --auth jwt).
    #[arg(long, env = "STREAMHOUSE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

/// A connection to one agent.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    base: String,
    token: Option<String>,
    pub(crate) http: reqwest::Client,
}

impl Conn {
    pub(crate) fn new(t: &Target) -> Result<Conn, CliError> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| CliError::Other(e.into()))?;
        Ok(Conn {
            base: t.url.trim_end_matches('/').to_string(),
            token: t.token.clone().filter(|s| !s.is_empty()),
            http,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` with the token attached.
    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends and parses a JSON answer; a 4xx/5xx becomes [`CliError::Server`].
    pub(crate) async fn json(&self, req: RequestBuilder) -> Result<Value, CliError> {
        let resp = send(req).await?;
        let text = resp.text().await.map_err(|e| CliError::Other(e.into()))?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| CliError::Other(e.into()))
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.json(self.request(Method::GET, path)).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.json(self.request(Method::POST, path).json(body)).await
    }
}

/// Sends `req`; answers other than 2xx become errors naming the problem.
pub(crate) async fn send(req: RequestBuilder) -> Result<Response, CliError> {
    let resp = req
        .send()
        .await
        .map_err(|e| CliError::Unreachable(e.to_string()))?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(problem(resp).await)
}

/// The error a non-2xx answer means.
pub(crate) async fn problem(resp: Response) -> CliError {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let text = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_string))
        .unwrap_or(text);
    CliError::Server {
        status,
        detail,
        retry_after,
    }
}

/// `s` escaped for a URL path segment or query value.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
