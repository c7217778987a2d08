//! Reading pages of records for the catch-up benches, cheaply enough that
//! the client is not what is measured.
//!
//! A page is fetched into a buffer the reader keeps from page to page, and
//! skimmed: its JSON structure is walked and checked, strings are jumped
//! over with `memchr`, and only what the bench counts is taken out (the
//! records, the bytes of their values as sent, `next_offset`). A full
//! `serde_json` parse of every 1 KiB value costs the client about as much
//! CPU as the agent spends serving it, and both share the machine.

use anyhow::{Context, bail};

/// What a catch-up reader needs from one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    pub records: u64,
    /// Bytes of the records' `value` members, as JSON.
    pub value_bytes: u64,
    pub next_offset: i64,
    /// Bytes of the answer's body.
    pub body_bytes: u64,
}

/// Fetches `url` into `buf` (cleared first; its capacity is kept, so a
/// reader's pages after the first cost no reallocation) and skims it.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    url: &str,
    buf: &mut Vec<u8>,
) -> anyhow::Result<Page> {
    let mut response = client.get(url).send().await?.error_for_status()?;
    buf.clear();
    while let Some(chunk) = response.chunk().await? {
        buf.extend_from_slice(&chunk);
    }
    skim(buf).with_context(|| format!("page from {url}"))
}

/// Deepest nesting a value may have.
const MAX_DEPTH: usize = 128;

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    fn expect(&mut self, c: u8) -> anyhow::Result<()> {
        if self.peek() != Some(c) {
            bail!("expected '{}' at byte {}", c as char, self.i);
        }
        self.i += 1;
        Ok(())
    }

    /// Ends a member or element: true after `,`, false after `close`.
    fn more(&mut self, close: u8) -> anyhow::Result<bool> {
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => bail!("expected ',' or '{}' at byte {}", close as char, self.i),
        }
    }

    /// Empty container: consumes `close` and says so.
    fn empty(&mut self, close: u8) -> bool {
        let empty = self.peek() == Some(close);
        if empty {
            self.i += 1;
        }
        empty
    }

    /// A string's contents, escapes left as they are.
    fn string(&mut self) -> anyhow::Result<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            let rest = self.b.get(self.i..).unwrap_or_default();
            let Some(k) = memchr::memchr2(b'"', b'\\', rest) else {
                bail!("unterminated string from byte {start}");
            };
            let at = self.i + k;
            if self.b[at] == b'"' {
                self.i = at + 1;
                return Ok(&self.b[start..at]);
            }
            self.i = at + 2;
        }
    }

    fn value(&mut self, depth: usize) -> anyhow::Result<()> {
        if depth > MAX_DEPTH {
            bail!("nested deeper than {MAX_DEPTH} at byte {}", self.i);
        }
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{') => {
                self.i += 1;
                if !self.empty(b'}') {
                    loop {
                        self.string()?;
                        self.expect(b':')?;
                        self.value(depth + 1)?;
                        if !self.more(b'}')? {
                            break;
                        }
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                if !self.empty(b']') {
                    loop {
                        self.value(depth + 1)?;
                        if !self.more(b']')? {
                            break;
                        }
                    }
                }
            }
            Some(_) => {
                let start = self.i;
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
                {
                    self.i += 1;
                }
                if self.i == start {
                    bail!("unexpected byte at {start}");
                }
            }
            None => bail!("document ends early"),
        }
        Ok(())
    }

    /// One record object: adds its value's length to `value_bytes`.
    fn record(&mut self, value_bytes: &mut u64) -> anyhow::Result<()> {
        self.expect(b'{')?;
        if self.empty(b'}') {
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            self.peek();
            let start = self.i;
            self.value(1)?;
            if key == b"value" {
                *value_bytes += (self.i - start) as u64;
            }
            if !self.more(b'}')? {
                return Ok(());
            }
        }
    }
}

/// Walks a read response, checking its structure.
pub(crate) fn skim(body: &[u8]) -> anyhow::Result<Page> {
    let mut c = Cursor { b: body, i: 0 };
    let (mut records, mut value_bytes, mut next_offset) = (0u64, 0u64, None);
    c.expect(b'{')?;
    if !c.empty(b'}') {
        loop {
            let key = c.string()?;
            c.expect(b':')?;
            match key {
                b"records" => {
                    c.expect(b'[')?;
                    if !c.empty(b']') {
                        loop {
                            c.record(&mut value_bytes)?;
                            records += 1;
                            if !c.more(b']')? {
                                break;
                            }
                        }
                    }
                }
                b"next_offset" => {
                    c.peek();
                    let start = c.i;
                    c.value(1)?;
                    let text = std::str::from_utf8(&body[start..c.i])?;
                    next_offset = Some(text.parse::<i64>().context("next_offset")?);
                }
                _ => c.value(1)?,
            }
            if !c.more(b'}')? {
                break;
            }
        }
    }
    if c.peek().is_some() {
        bail!("bytes after the document at {}", c.i);
    }
    Ok(Page {
        records,
        value_bytes,
        next_offset: next_offset.context("no next_offset")?,
        body_bytes: body.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skims_what_a_full_parse_would_count() {
        let body = br#"{"topic":"t","partition":0,"records":[
            {"offset":7,"timestamp":1,"key":null,"value":"a\"b\\","value_encoding":"json","headers":[{"key":"k","value":"v"}]},
            {"offset":8,"timestamp":1,"key":"x","value":{"n":[1,-2.5,true,null]},"headers":[]}
        ],"next_offset":9,"high_watermark":9,"log_start_offset":0}"#;
        let page = skim(body).unwrap();
        let full: serde_json::Value = serde_json::from_slice(body).unwrap();
        let values: u64 = full["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| serde_json::to_string(&r["value"]).unwrap().len() as u64)
            .sum();
        assert_eq!(
            page,
            Page {
                records: 2,
                value_bytes: values,
                next_offset: 9,
                body_bytes: body.len() as u64,
            }
        );
    }

    #[test]
    fn refuses_broken_documents() {
        for bad in [
            &br#"{"records":[{"value":"x"}"#[..],
            br#"{"records":[],"next_offset":1"#,
            br#"{"records":[{"value":"x}],"next_offset":1}"#,
            br#"{"records":[],"next_offset":1} x"#,
            br#"{"records":[]}"#,
            br#"{"records":[{"value":"x\"#,
        ] {
            assert!(skim(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
