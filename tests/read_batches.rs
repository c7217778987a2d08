//! Reads that return the stored record batches as they are (`Accept:
//! application/vnd.streamhouse.record-batches`), against a real embedded
//! agent: the batches decode to the records a JSON read returns, whole
//! batches only, offsets in headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::TestAgent;
use serde_json::{Value, json};
use streamhouse_server::format::{decode_batch, read_header};
use streamhouse_server::model::StoredRecord;

const BATCHES: &str = "application/vnd.streamhouse.record-batches";

/// A batch read's answer: status, the offsets from its headers, and its
/// batches decoded (base offset, attributes, records).
struct Page {
    status: u16,
    next_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
    record_count: i64,
    batches: Vec<(i64, i16, Vec<StoredRecord>)>,
    problem: Value,
}

async fn read_batches(a: &TestAgent, topic: &str, query: &str) -> Page {
    let r = a
        .api
        .client
        .get(
            a.api
                .url(&format!("/v1/topics/{topic}/partitions/0/records?{query}")),
        )
        .header("accept", BATCHES)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let h = r.headers().clone();
    let number = |name: &str| -> i64 {
        h.get(name)
            .map(|v| v.to_str().unwrap().parse().unwrap())
            .unwrap_or(-1)
    };
    let mut page = Page {
        status,
        next_offset: number("streamhouse-next-offset"),
        high_watermark: number("streamhouse-high-watermark"),
        log_start_offset: number("streamhouse-log-start-offset"),
        record_count: number("streamhouse-record-count"),
        batches: Vec::new(),
        problem: Value::Null,
    };
    if status != 200 {
        assert_eq!(
            h.get("content-type").unwrap(),
            "application/problem+json",
            "a refusal is a problem document"
        );
        page.problem = r.json().await.unwrap();
        return page;
    }
    assert_eq!(h.get("content-type").unwrap(), BATCHES);
    let length: usize = h
        .get("content-length")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), length, "the length is exact");
    let mut at = 0;
    while at < body.len() {
        let (header, total) = read_header(&body[at..]).expect("each batch passes its CRC check");
        let base = i64::from_be_bytes(body[at..at + 8].try_into().unwrap());
        let batch: Bytes = body.slice(at..at + total);
        page.batches
            .push((base, header.attributes, decode_batch(&batch, base).unwrap()));
        at += total;
    }
    page
}

/// The records of a JSON read from `offset`, as (offset, key, value, headers).
async fn json_records(a: &TestAgent, topic: &str, offset: i64) -> Vec<Value> {
    let page = a
        .read(topic, 0, &format!("offset={offset}&limit=1000"))
        .await;
    page["records"].as_array().unwrap().clone()
}

fn same_record(stored: &StoredRecord, json: &Value) {
    assert_eq!(stored.offset, json["offset"].as_i64().unwrap());
    assert_eq!(stored.timestamp, json["timestamp"].as_i64().unwrap());
    let key = stored
        .key
        .as_ref()
        .map(|k| String::from_utf8(k.to_vec()).unwrap());
    assert_eq!(key.as_deref(), json["key"].as_str());
    let value = stored.value.as_ref().map(|v| v.to_vec());
    match json["value_encoding"].as_str().unwrap() {
        "json" => assert_eq!(
            serde_json::from_slice::<Value>(&value.unwrap()).unwrap(),
            json["value"]
        ),
        "base64" => {
            use base64::Engine;
            let want = base64::engine::general_purpose::STANDARD
                .decode(json["value"].as_str().unwrap())
                .unwrap();
            assert_eq!(value.unwrap(), want);
        }
        other => panic!("unexpected encoding {other}"),
    }
    let headers: Vec<Value> = stored
        .headers
        .iter()
        .map(|h| {
            json!({"key": h.key, "value": h.value.as_ref().map(|v| String::from_utf8(v.to_vec()).unwrap())})
        })
        .collect();
    assert_eq!(Value::Array(headers), json["headers"]);
}

#[tokio::test]
async fn batches_decode_to_the_records_a_json_read_returns() {
    let a = TestAgent::start(&[]).await;
    a.create_topic("t", 1).await;
    // Three requests, three flushes, three batches: 0-1, 2, 3-5.
    a.produce(
        "t",
        json!({"records": [
            {"key": "k0", "value": {"n": 0}, "headers": {"trace": "abc"}},
            {"value": "one"}
        ]}),
    )
    .await;
    let published = a
        .api
        .send(
            |c, u| {
                c.post(u)
                    .header("content-type", "application/octet-stream")
                    .body(vec![0u8, 159, 146, 150, 255])
            },
            "/v1/topics/t/publish?key=bin",
        )
        .await;
    assert_eq!(published.status, 200, "{}", published.text);
    a.produce(
        "t",
        json!({"records": [{"value": 3}, {"value": [4]}, {"key": "k5", "value": {"n": 5}}]}),
    )
    .await;

    let page = read_batches(&a, "t", "offset=0&limit=1000").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        (
            page.next_offset,
            page.high_watermark,
            page.log_start_offset,
            page.record_count
        ),
        (6, 6, 0, 6)
    );
    let bases: Vec<i64> = page.batches.iter().map(|(b, _, _)| *b).collect();
    assert_eq!(bases, [0, 2, 3], "each batch carries its real base offset");
    let stored: Vec<StoredRecord> = page.batches.into_iter().flat_map(|(_, _, r)| r).collect();
    let json = json_records(&a, "t", 0).await;
    assert_eq!(stored.len(), json.len());
    for (s, j) in stored.iter().zip(&json) {
        same_record(s, j);
    }

    // Whole batches: from the middle of the last one, it comes whole.
    let page = read_batches(&a, "t", "offset=4").await;
    assert_eq!((page.next_offset, page.record_count), (6, 3));
    assert_eq!(page.batches.len(), 1);
    assert_eq!(
        page.batches[0].2[0].offset, 3,
        "records before the offset come too"
    );

    // The limits end a page at the first batch boundary past them.
    let page = read_batches(&a, "t", "offset=0&limit=1").await;
    assert_eq!(
        (page.batches.len(), page.next_offset, page.record_count),
        (1, 2, 2)
    );
    let page = read_batches(&a, "t", "offset=2&limit=2").await;
    assert_eq!((page.batches.len(), page.next_offset), (2, 6));
    let page = read_batches(&a, "t", "offset=0&max_bytes=1").await;
    assert_eq!(
        (page.batches.len(), page.next_offset),
        (1, 2),
        "at least one batch"
    );

    // At the high watermark: nothing, and the same offset to go on from.
    let page = read_batches(&a, "t", "offset=6").await;
    assert_eq!(
        (page.status, page.batches.len(), page.next_offset),
        (200, 0, 6)
    );

    // Refusals are the JSON read's, as problem documents.
    let page = read_batches(&a, "t", "offset=7").await;
    assert_eq!(page.status, 416);
    let page = read_batches(&a, "t", "limit=0").await;
    assert_eq!(page.status, 400);
    assert_eq!(page.problem["field"], "limit");
}

#[tokio::test]
async fn compressed_batches_come_as_stored_and_wait_for_records_like_a_json_read() {
    let a = TestAgent::start(&[]).await;
    let topic = json!({"name": "z", "partitions": 1, "compression": "zstd"});
    a.api.post("/v1/topics", &topic).await.expect(201);
    let recs: Vec<Value> = (0..100)
        .map(|i| json!({"key": format!("k{i}"), "value": {"n": i, "pad": "x".repeat(40)}}))
        .collect();
    a.produce("z", json!({"records": recs})).await;

    let page = read_batches(&a, "z", "offset=0").await;
    assert_eq!(page.batches.len(), 1);
    let (_, attributes, records) = &page.batches[0];
    assert_eq!(attributes & 0x07, 4, "still zstd-compressed");
    let json = json_records(&a, "z", 0).await;
    assert_eq!(records.len(), 100);
    for (s, j) in records.iter().zip(&json) {
        same_record(s, j);
    }

    // A long-poll at the high watermark returns the next batch.
    let reading = {
        let a_url = a
            .api
            .url("/v1/topics/z/partitions/0/records?offset=100&wait_ms=5000");
        let client = a.api.client.clone();
        tokio::spawn(async move {
            let r = client
                .get(a_url)
                .header("accept", BATCHES)
                .send()
                .await
                .unwrap();
            let next = r.headers()["streamhouse-next-offset"]
                .to_str()
                .unwrap()
                .to_string();
            (next, r.bytes().await.unwrap().len())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    a.produce("z", json!({"records": [{"value": 100}]})).await;
    let (next, len) = reading.await.unwrap();
    assert_eq!(next, "101");
    assert!(len > 61, "one batch came: {len} bytes");
}
