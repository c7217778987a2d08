//! A lean HTTP/1.1 keep-alive client for the request-rate benches
//! (`bench http`, `bench produce`, `bench pathological`): one connection
//! per worker, each request written whole in one write, each answer read
//! into a buffer the connection keeps. A general client (URL parsing, a
//! header map and a pool checkout per request) cost the benches a third
//! of a core at 10,000 requests per second on the two cores they share
//! with the agents; this one costs what `wrk` does.
//!
//! It speaks only what the agents answer: a status line, headers, and a
//! body sized by `Content-Length` or sent chunked. It reconnects when the
//! agent closes the connection.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where an agent listens, and the request head every request carries.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    addr: SocketAddr,
    /// `Host` and `Authorization` (from `STREAMHOUSE_TOKEN`) header lines.
    common: String,
}

impl Target {
    /// Resolves `base` (`http://host:port`).
    pub(crate) async fn new(base: &str) -> anyhow::Result<Target> {
        let url = reqwest::Url::parse(base).with_context(|| format!("{base:?} is not a URL"))?;
        anyhow::ensure!(url.scheme() == "http", "{base}: only http:// is supported");
        let host = url.host_str().context("the URL has no host")?.to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .with_context(|| format!("{host} does not resolve"))?;
        let mut common = format!("Host: {host}:{port}\r\n");
        if let Ok(token) = std::env::var("STREAMHOUSE_TOKEN") {
            common.push_str(&format!("Authorization: Bearer {}\r\n", token.trim()));
        }
        Ok(Target { addr, common })
    }

    /// The bytes of a request: `method path`, the common headers, `extra`
    /// header lines (each ending in CRLF), and a JSON body when there is one.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        extra: &str,
        json_body: Option<&[u8]>,
    ) -> Vec<u8> {
        let body = json_body.unwrap_or_default();
        let mut out = Vec::with_capacity(128 + self.common.len() + extra.len() + body.len());
        out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\n").as_bytes());
        out.extend_from_slice(self.common.as_bytes());
        out.extend_from_slice(extra.as_bytes());
        if json_body.is_some() {
            out.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }
}

/// One keep-alive connection.
#[derive(Debug)]
pub(crate) struct Conn {
    target: Target,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) fn new(target: Target) -> Conn {
        Conn {
            target,
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends `request` (from [`Target::request`]) and reads the answer's
    /// status; the body is read and dropped. A connection the agent
    /// closed before answering is reopened and the request sent again once.
    pub(crate) async fn send(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        let reused = self.stream.is_some();
        match self.exchange(request).await {
            Ok(status) => Ok(status),
            Err(_) if reused => {
                self.stream = None;
                self.exchange(request).await
            }
            Err(e) => Err(e),
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.target.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let result = self.round_trip(request).await;
        if !matches!(result, Ok((_, true))) {
            self.stream = None;
        }
        result.map(|(status, _)| status)
    }

    /// The status, and whether the connection stays open.
    async fn round_trip(&mut self, request: &[u8]) -> anyhow::Result<(u16, bool)> {
        let stream = self.stream.as_mut().context("not connected")?;
        stream.write_all(request).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            read_more(stream, &mut self.buf).await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("response head")?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .context("no status line")?;
        let mut length = None;
        let (mut chunked, mut close) = (false, false);
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        if chunked {
            self.skip_chunked(head_end).await?;
        } else {
            let end = head_end + length.unwrap_or(0);
            while self.buf.len() < end {
                let stream = self.stream.as_mut().context("not connected")?;
                read_more(stream, &mut self.buf).await?;
            }
        }
        Ok((status, !close))
    }

    /// Reads a chunked body that starts at `pos` to its end.
    async fn skip_chunked(&mut self, mut pos: usize) -> anyhow::Result<()> {
        loop {
            let line_end = loop {
                if let Some(i) = memchr::memmem::find(&self.buf[pos..], b"\r\n") {
                    break pos + i;
                }
                let stream = self.stream.as_mut().context("not connected")?;
                read_more(stream, &mut self.buf).await?;
            };
            let size_text = std::str::from_utf8(&self.buf[pos..line_end])?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .context("chunk size")?;
            // The chunk, its CRLF; the last (empty) chunk ends with CRLF too.
            let end = line_end + 2 + size + 2;
            while self.buf.len() < end {
                let stream = self.stream.as_mut().context("not connected")?;
                read_more(stream, &mut self.buf).await?;
            }
            if size == 0 {
                return Ok(());
            }
            pos = end;
        }
    }
}

/// Idle connections to one agent, for open-loop benches whose requests
/// come and go as tasks: a task takes one (or opens one), sends, and gives
/// it back.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) target: Target,
    idle: std::sync::Mutex<Vec<Conn>>,
}

impl Pool {
    pub(crate) fn new(target: Target) -> Pool {
        Pool {
            target,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn take(&self) -> Conn {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        idle.unwrap_or_else(|| Conn::new(self.target.clone()))
    }

    pub(crate) fn give(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    buf.reserve(16 * 1024);
    if stream.read_buf(buf).await? == 0 {
        bail!("the agent closed the connection");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves `answers` in order on one connection, one per request.
    async fn serve(answers: Vec<&'static [u8]>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for a in answers {
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(a).await.unwrap();
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn reads_sized_and_chunked_answers_on_one_connection() {
        let url = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ])
        .await;
        let t = Target::new(&url).await.unwrap();
        let mut c = Conn::new(t.clone());
        let req = t.request("POST", "/v1/x", "", Some(b"{}"));
        assert!(req.ends_with(b"Content-Length: 2\r\n\r\n{}"));
        assert_eq!(c.send(&req).await.unwrap(), 200);
        assert_eq!(c.send(&req).await.unwrap(), 429);
        assert_eq!(
            c.send(&t.request("GET", "/healthz", "", None))
                .await
                .unwrap(),
            204
        );
    }
}
