//! How `consume` prints a record: its value (the default), the whole
//! record as JSON, or a template in the manner of kcat's `-f`:
//! `%t` topic, `%p` partition, `%o` offset, `%T` timestamp (ms), `%k` key,
//! `%v` value, `%h` headers (JSON), `%%` a percent sign; `\n`, `\t`, `\\`.

use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;

/// One record of a read answer, its value kept as the agent wrote it.
#[derive(Debug, Deserialize)]
pub(crate) struct Rec<'a> {
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    #[serde(default)]
    pub(crate) key: Option<String>,
    #[serde(default)]
    pub(crate) key_b64: Option<String>,
    #[serde(borrow)]
    pub(crate) value: &'a RawValue,
    pub(crate) value_encoding: String,
    #[serde(borrow)]
    pub(crate) headers: &'a RawValue,
}

impl Rec<'_> {
    /// The value's bytes: JSON text as stored, base64 decoded, nothing for a tombstone.
    pub(crate) fn value_bytes(&self) -> Vec<u8> {
        match self.value_encoding.as_str() {
            "json" => self.value.get().as_bytes().to_vec(),
            "base64" => serde_json::from_str::<String>(self.value.get())
                .ok()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn key_bytes(&self) -> Vec<u8> {
        match (&self.key, &self.key_b64) {
            (Some(k), _) => k.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
    Headers,
}

/// How records are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// The value, then a newline.
    Value,
    /// The whole record as one line of JSON.
    Json,
    Template(Vec<Piece>),
}

impl Output {
    pub(crate) fn parse(spec: &str) -> Result<Output, String> {
        match spec {
            "value" => return Ok(Output::Value),
            "json" => return Ok(Output::Json),
            _ => {}
        }
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut chars = spec.chars();
        while let Some(c) = chars.next() {
            let piece = match c {
                '%' => match chars.next() {
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('T') => Piece::Timestamp,
                    Some('k') => Piece::Key,
                    Some('v') => Piece::Value,
                    Some('h') => Piece::Headers,
                    Some('%') => {
                        text.push(b'%');
                        continue;
                    }
                    other => {
                        return Err(format!(
                            "unknown %{} in --format (use %t %p %o %T %k %v %h %%)",
                            other.map(String::from).unwrap_or_default()
                        ));
                    }
                },
                '\\' => {
                    match chars.next() {
                        Some('n') => text.push(b'\n'),
                        Some('t') => text.push(b'\t'),
                        Some('\\') => text.push(b'\\'),
                        Some(o) => {
                            text.push(b'\\');
                            text.extend_from_slice(o.to_string().as_bytes());
                        }
                        None => text.push(b'\\'),
                    }
                    continue;
                }
                c => {
                    let mut buf = [0u8; 4];
                    text.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Output::Template(pieces))
    }

    /// Appends `r` of `topic`/`partition` to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>, topic: &str, partition: i32, r: &Rec<'_>) {
        match self {
            Output::Value => {
                out.extend_from_slice(&r.value_bytes());
                out.push(b'\n');
            }
            Output::Json => {
                let key = match (&r.key, &r.key_b64) {
                    (Some(k), _) => serde_json::json!({"key": k}),
                    (None, Some(b)) => serde_json::json!({"key_b64": b}),
                    _ => serde_json::json!({"key": null}),
                };
                out.extend_from_slice(
                    format!(
                        "{{\"topic\":{},\"partition\":{partition},\"offset\":{},\"timestamp\":{},{},\"value\":{},\"value_encoding\":\"{}\",\"headers\":{}}}\n",
                        serde_json::Value::String(topic.into()),
                        r.offset,
                        r.timestamp,
                        &key.to_string()[1..key.to_string().len() - 1],
                        r.value.get(),
                        r.value_encoding,
                        r.headers.get()
                    )
                    .as_bytes(),
                );
            }
            Output::Template(pieces) => {
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.extend_from_slice(t),
                        Piece::Topic => out.extend_from_slice(topic.as_bytes()),
                        Piece::Partition => out.extend_from_slice(partition.to_string().as_bytes()),
                        Piece::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
                        Piece::Timestamp => {
                            out.extend_from_slice(r.timestamp.to_string().as_bytes())
                        }
                        Piece::Key => out.extend_from_slice(&r.key_bytes()),
                        Piece::Value => out.extend_from_slice(&r.value_bytes()),
                        Piece::Headers => out.extend_from_slice(r.headers.get().as_bytes()),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_print_fields_and_escapes() {
        let page = r#"{"offset":7,"timestamp":5,"key":"k","value":"aGk=","value_encoding":"base64","headers":[]}"#;
        let r: Rec<'_> = serde_json::from_str(page).unwrap();
        let mut out = Vec::new();
        Output::parse("%t/%p@%o %k=%v\\t%%\\n")
            .unwrap()
            .write(&mut out, "t", 1, &r);
        assert_eq!(out, b"t/1@7 k=hi\t%\n");
        let mut out = Vec::new();
        Output::Json.write(&mut out, "t", 1, &r);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["value"], "aGk=");
        assert_eq!(v["key"], "k");
        assert!(Output::parse("%x").is_err());
    }
}
