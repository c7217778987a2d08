//! Byte compatibility with Kafka: our chunks against batches built and
//! parsed by a real Kafka client library (kafka-python).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use bytes::Bytes;
use serde_json::{Value, json};
use streamhouse_server::format::{decode_batch, encode_batch, patch_base_offset};
use streamhouse_server::model::{Compression, Header, Record};

fn python(req: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_compat.py");
    let mut child = Command::new(common::python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn records() -> Vec<Record> {
    let mut out = Vec::new();
    for i in 0..40i64 {
        out.push(Record {
            // Out-of-order timestamps exercise negative deltas.
            timestamp: 1_700_000_000_000 + (i * 37) % 11 * 1000 - 5000,
            key: match i % 4 {
                0 => None,
                1 => Some(Bytes::new()),
                _ => Some(Bytes::from(format!("key-{i}"))),
            },
            value: match i % 5 {
                0 => None,
                1 => Some(Bytes::new()),
                _ => Some(Bytes::from(format!(
                    "{{\"n\":{i},\"pad\":\"{}\"}}",
                    "x".repeat(i as usize * 7)
                ))),
            },
            headers: (0..(i % 3))
                .map(|h| Header {
                    key: format!("h{h}").into(),
                    value: if h == 1 {
                        None
                    } else {
                        Some(Bytes::from(vec![h as u8, 0xff, 7]))
                    },
                })
                .collect(),
        });
    }
    out
}

fn spec(records: &[Record], compression: &str) -> Value {
    let recs: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "timestamp": r.timestamp,
                "key": r.key.as_ref().map(|k| hex(k)),
                "value": r.value.as_ref().map(|v| hex(v)),
                "headers": r.headers.iter().map(|h| json!([h.key, h.value.as_ref().map(|v| hex(v))])).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"op": "build", "compression": compression, "records": recs})
}

#[test]
fn uncompressed_chunks_are_byte_identical_to_kafka_clients() {
    let recs = records();
    let theirs = unhex(python(spec(&recs, "none"))["batch"].as_str().unwrap());
    let mut ours = Vec::new();
    encode_batch(&mut ours, &recs, Compression::None);
    assert_eq!(hex(&ours), hex(&theirs));
}

#[test]
fn compressed_chunks_interoperate_both_ways() {
    let recs = records();
    for (name, codec, code) in [("lz4", Compression::Lz4, 3), ("zstd", Compression::Zstd, 4)] {
        // Theirs decodes with our decoder.
        let theirs = Bytes::from(unhex(python(spec(&recs, name))["batch"].as_str().unwrap()));
        assert_eq!(
            i16::from_be_bytes([theirs[21], theirs[22]]) & 7,
            code,
            "{name} batch is compressed"
        );
        let decoded = decode_batch(&theirs, 0).unwrap();
        assert_eq!(decoded.len(), recs.len());
        for (d, r) in decoded.iter().zip(&recs) {
            assert_eq!(
                (d.timestamp, &d.key, &d.value, &d.headers[..]),
                (r.timestamp, &r.key, &r.value, &r.headers[..])
            );
        }
        // Ours (with a patched base offset, as served later) parses with theirs.
        let mut ours = Vec::new();
        encode_batch(&mut ours, &recs, codec);
        patch_base_offset(&mut ours, 1000).unwrap();
        let parsed = python(json!({"op": "parse", "batch": hex(&ours)}));
        assert_eq!(parsed["compression"], code);
        assert_eq!(parsed["base_offset"], 1000);
        assert_eq!(parsed["last_offset_delta"], recs.len() - 1);
        let max_ts = recs.iter().map(|r| r.timestamp).max().unwrap();
        assert_eq!(parsed["max_timestamp"], max_ts);
        let got = parsed["records"].as_array().unwrap();
        assert_eq!(got.len(), recs.len());
        for (i, (g, r)) in got.iter().zip(&recs).enumerate() {
            assert_eq!(g["offset"], 1000 + i as i64);
            assert_eq!(g["timestamp"], r.timestamp);
            assert_eq!(g["key"], json!(r.key.as_ref().map(|k| hex(k))));
            assert_eq!(g["value"], json!(r.value.as_ref().map(|v| hex(v))));
        }
    }
}

#[test]
fn murmur2_matches_the_kafka_client() {
    let keys: Vec<Vec<u8>> = (0..200u32)
        .map(|i| format!("key-{i}-{}", "z".repeat((i % 9) as usize)).into_bytes())
        .collect();
    let theirs =
        python(json!({"op": "murmur2", "keys": keys.iter().map(|k| hex(k)).collect::<Vec<_>>()}));
    for (k, h) in keys.iter().zip(theirs["murmur2"].as_array().unwrap()) {
        assert_eq!(
            streamhouse_server::ingest::partitioner::murmur2(k) as u32 as u64,
            h.as_u64().unwrap()
        );
    }
}

#[tokio::test]
async fn record_batch_reads_parse_with_the_kafka_client() {
    let a = common::TestAgent::start(&[]).await;
    for compression in ["none", "zstd"] {
        let topic = json!({"name": compression, "partitions": 1, "compression": compression});
        a.api.post("/v1/topics", &topic).await.expect(201);
        for n in 0..3 {
            let recs: Vec<Value> = (0..5)
                .map(|i| json!({"key": format!("k{n}-{i}"), "value": {"n": n * 5 + i}}))
                .collect();
            a.produce(compression, json!({"records": recs})).await;
        }
        let answer = a
            .api
            .client
            .get(a.api.url(&format!(
                "/v1/topics/{compression}/partitions/0/records?offset=7"
            )))
            .header("accept", "application/vnd.streamhouse.record-batches")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let body = answer.bytes().await.unwrap();
        // Each batch, split by its length field, parsed by kafka-python.
        let (mut at, mut offsets) = (0, Vec::new());
        while at < body.len() {
            let len = i32::from_be_bytes(body[at + 8..at + 12].try_into().unwrap()) as usize + 12;
            let parsed = python(json!({"op": "parse", "batch": hex(&body[at..at + len])}));
            for r in parsed["records"].as_array().unwrap() {
                let offset = r["offset"].as_i64().unwrap();
                let value: Value =
                    serde_json::from_slice(&unhex(r["value"].as_str().unwrap())).unwrap();
                assert_eq!(
                    value["n"], offset,
                    "{compression}: the record at its offset"
                );
                offsets.push(offset);
            }
            at += len;
        }
        assert_eq!(
            offsets,
            (5..15).collect::<Vec<_>>(),
            "{compression}: whole batches from the one holding 7"
        );
    }
}
