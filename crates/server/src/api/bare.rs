//! The HTTP parser's own answers, as problem documents.
//!
//! A request head the HTTP/1 parser cannot take never reaches a route: the
//! parser answers it itself (400 for a malformed head, 414 for a request
//! target over [`MAX_TARGET_BYTES`], 431 for a head over [`MAX_HEAD_BYTES`]
//! or with more than [`MAX_HEADERS`] fields) with an empty body, and closes
//! the connection. [`ProblemAnswers`] sits between the parser and the
//! socket and replaces exactly those empty answers with the same status
//! carrying an `application/problem+json` body that names the limit, so a
//! client learns what it did wrong like from any other 4xx.
//!
//! The parser's answer is recognised by its whole shape (status line,
//! `connection: close`, `content-length: 0`, `date`, nothing else), written
//! in one piece; no answer of a route has that shape, since every 4xx a
//! route gives carries a problem document.
//!
//! The parser's byte limit is not exact: one read can bring more than
//! [`MAX_HEAD_BYTES`] into its buffer (whose capacity is rounded up), and a
//! head that arrived in such a read is taken whole. [`head_refusal`]
//! refuses those in front of every route, with the same answer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::{ApiError, ErrorCode};

/// Longest request target the parser takes (hyper's fixed limit).
pub(crate) const MAX_TARGET_BYTES: usize = 65_534;
/// Largest request head the parser buffers (hyper's default, set
/// explicitly so that the documented figure is the configured one).
pub(crate) const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// Most header fields in one request head.
pub(crate) const MAX_HEADERS: usize = 100;

/// Longest empty answer of the parser (its status line, three headers).
const BARE_MAX: usize = 160;

/// Refuses a request whose head is over [`MAX_HEAD_BYTES`] (counted no
/// larger than it was on the wire) or has more than [`MAX_HEADERS`] fields,
/// as the parser does: 431 with a problem document, and the connection
/// closed.
pub(super) fn head_refusal(req: &axum::extract::Request) -> Option<axum::response::Response> {
    if head_bytes(req) <= MAX_HEAD_BYTES && req.headers().len() <= MAX_HEADERS {
        return None;
    }
    let mut response = axum::response::IntoResponse::into_response(too_large_head());
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    Some(response)
}

/// The fewest bytes the request head can have taken: the request line and
/// each field as `name:value` with its line end.
fn head_bytes(req: &axum::extract::Request) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 1 + value.len() + 2)
        .sum();
    line + fields + 2
}

fn too_large_head() -> ApiError {
    ApiError::new(
        ErrorCode::HeadTooLarge,
        format!(
            "the request head may be at most {MAX_HEAD_BYTES} bytes \
             with at most {MAX_HEADERS} header fields"
        ),
    )
    .with_field("headers")
    .with_limit(MAX_HEAD_BYTES as u64)
}

/// The problem bodies, rendered once.
#[derive(Debug)]
pub(super) struct Answers {
    malformed: Bytes,
    target: Bytes,
    head: Bytes,
}

impl Answers {
    pub(super) async fn render() -> Arc<Answers> {
        let body = |e: ApiError| async move {
            let response = axum::response::IntoResponse::into_response(e);
            axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .unwrap_or_default()
        };
        Arc::new(Answers {
            malformed: body(ApiError::new(
                ErrorCode::MalformedRequest,
                "the request is not valid HTTP/1.1 (request line, header syntax or framing)",
            ))
            .await,
            target: body(
                ApiError::new(
                    ErrorCode::UriTooLong,
                    format!("the request target may be at most {MAX_TARGET_BYTES} bytes"),
                )
                .with_field("uri")
                .with_limit(MAX_TARGET_BYTES as u64),
            )
            .await,
            head: body(too_large_head()).await,
        })
    }

    /// The replacement for `written` when it is one of the parser's own
    /// empty answers.
    fn replace(&self, written: &[u8]) -> Option<Vec<u8>> {
        let (status, body): (&str, &Bytes) = match written.get(..13)? {
            b"HTTP/1.1 400 " => ("400 Bad Request", &self.malformed),
            b"HTTP/1.1 414 " => ("414 URI Too Long", &self.target),
            b"HTTP/1.1 431 " => ("431 Request Header Fields Too Large", &self.head),
            _ => return None,
        };
        let rest = written.strip_prefix(format!("HTTP/1.1 {status}").as_bytes())?;
        let date = rest
            .strip_prefix(b"\r\nconnection: close\r\ncontent-length: 0\r\ndate: ")?
            .strip_suffix(b"\r\n\r\n")?;
        if date.len() != 29 || date.contains(&b'\r') {
            return None;
        }
        let mut out = Vec::with_capacity(160 + body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_bytes());
        out.extend_from_slice(
            b"\r\nconnection: close\r\ncontent-type: application/problem+json\r\ncontent-length: ",
        );
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\ndate: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
        Some(out)
    }
}

/// An IO that rewrites the parser's empty answers; see the module header.
#[derive(Debug)]
pub(super) struct ProblemAnswers<T> {
    inner: T,
    answers: Arc<Answers>,
    /// A replacement accepted from the parser, and how much of it the
    /// socket has taken.
    pending: Option<(Vec<u8>, usize)>,
    /// Set once a `101` answer went out: what follows is another protocol.
    upgraded: bool,
}

impl<T> ProblemAnswers<T> {
    pub(super) fn new(inner: T, answers: Arc<Answers>) -> Self {
        ProblemAnswers {
            inner,
            answers,
            pending: None,
            upgraded: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> ProblemAnswers<T> {
    /// Writes what is left of a replacement; ready once all of it is out.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, at)) = &mut self.pending {
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*at..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    *at += n;
                    if *at == bytes.len() {
                        self.pending = None;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemAnswers<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemAnswers<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        if buf.starts_with(b"HTTP/1.1 101 ") {
            this.upgraded = true;
        }
        if let Some(replacement) = (!this.upgraded && buf.len() <= BARE_MAX)
            .then(|| this.answers.replace(buf))
            .flatten()
        {
            this.pending = Some((replacement, 0));
            // Taken whole: the rest goes out on the next write, flush or
            // shutdown, which the parser always calls after its answer.
            let _ = this.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            return self.poll_write(cx, only);
        }
        let this = &mut *self;
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_counted_no_larger_than_on_the_wire() {
        let wire = format!(
            "GET /healthz?x=1 HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\n\r\n",
            "b".repeat(1000)
        );
        let req = axum::http::Request::get("/healthz?x=1")
            .header("host", "localhost")
            .header("x-big", "b".repeat(1000))
            .body(axum::body::Body::empty())
            .unwrap();
        // Two bytes fewer: no space after each field's colon.
        assert_eq!(head_bytes(&req), wire.len() - 2);
    }

    const DATE: &str = "Sun, 29 Nov 2026 05:49:45 GMT";

    fn bare(status: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn the_parsers_empty_answers_become_problem_documents() {
        let answers = Answers::render().await;
        for (status, kind, limit) in [
            ("414 URI Too Long", "uri-too-long", Some(MAX_TARGET_BYTES)),
            (
                "431 Request Header Fields Too Large",
                "head-too-large",
                Some(MAX_HEAD_BYTES),
            ),
            ("400 Bad Request", "malformed-request", None),
        ] {
            let out = answers.replace(&bare(status)).expect(status);
            let text = String::from_utf8(out).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{head}"
            );
            assert!(head.contains("content-type: application/problem+json"));
            assert!(head.contains(&format!("content-length: {}", body.len())));
            assert!(head.contains(&format!("date: {DATE}")));
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["type"], format!("urn:streamhouse:problem:{kind}"));
            assert_eq!(v["status"], status[..3].parse::<u16>().unwrap());
            assert_eq!(v["limit"].as_u64(), limit.map(|l| l as u64));
        }
    }

    #[tokio::test]
    async fn other_writes_pass_as_they_are() {
        let answers = Answers::render().await;
        // A route's own 400 carries a body; a 404 is not the parser's.
        let with_body = format!(
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 2\r\ndate: {DATE}\r\n\r\n{{}}"
        );
        for other in [
            with_body.as_bytes().to_vec(),
            bare("404 Not Found"),
            b"HTTP/1.1 414 ".to_vec(),
            b"{\"records\":[]}".to_vec(),
        ] {
            assert!(answers.replace(&other).is_none());
        }
    }

    #[tokio::test]
    async fn nothing_is_rewritten_after_an_upgrade() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(4096);
        let mut io = ProblemAnswers::new(server, Answers::render().await);
        let upgrade = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n";
        io.write_all(upgrade).await.unwrap();
        io.write_all(&bare("414 URI Too Long")).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        let mut got = Vec::new();
        let mut client = client;
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, [&upgrade[..], &bare("414 URI Too Long")].concat());
    }

    #[tokio::test]
    async fn a_replacement_reaches_the_socket_through_small_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let answers = Answers::render().await;
        let (client, server) = tokio::io::duplex(16);
        let mut io = ProblemAnswers::new(server, answers);
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let written = io.write(&bare("414 URI Too Long")).await.unwrap();
        assert_eq!(written, bare("414 URI Too Long").len());
        io.shutdown().await.unwrap();
        drop(io);
        let got = String::from_utf8(reader.await.unwrap()).unwrap();
        assert!(got.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{got}");
        assert!(got.ends_with('}'), "{got}");
        assert!(got.contains("\"limit\":65534"), "{got}");
    }
}
