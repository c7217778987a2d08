//! Produce and read through the HTTP API of a real embedded agent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestAgent;
use serde_json::{Value, json};

#[tokio::test]
async fn json_values_round_trip_byte_exact_with_keys_headers_and_tombstones() {
    let a = TestAgent::start(&[]).await;
    a.create_topic("t", 1).await;
    // Sent as raw text so key order, spacing and big numbers are ours.
    let body = r#"{"records":[
        {"key":"k1","value":{"z":1,"a":[1,2,3],"big":123456789012345678901234567890,"f":1.50},"headers":{"trace":"abc"}},
        {"value":null},
        {"key":""},
        {"key_b64":"AP8=","value_b64":"AAEC","headers":[{"key":"h","value":"1"},{"key":"h","value":"2"}]},
        {"value":"text","timestamp":1700000000000}
    ]}"#;
    let ack = a
        .api
        .post_raw("/v1/topics/t/records", "application/json", body)
        .await;
    assert_eq!(ack.status, 200);
    assert_eq!(ack.offsets(), [0, 1, 2, 3, 4]);

    let raw = a.api.read("t", 0, "offset=0").await.text;
    assert!(
        raw.contains(
            r#""value":{"z":1,"a":[1,2,3],"big":123456789012345678901234567890,"f":1.50}"#
        ),
        "value must be byte-exact: {raw}"
    );
    let page: Value = serde_json::from_str(&raw).unwrap();
    let recs = page["records"].as_array().unwrap();
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0]["key"], "k1");
    assert_eq!(recs[0]["value_encoding"], "json");
    assert_eq!(
        recs[0]["headers"],
        json!([{"key":"trace","value":"abc"},{"key":"content-type","value":"application/json"}])
    );
    assert_eq!(recs[1]["value"], Value::Null);
    assert_eq!(recs[1]["value_encoding"], "json", "JSON null is a value");
    assert_eq!(recs[2]["key"], "", "empty key differs from no key");
    assert_eq!(recs[2]["value_encoding"], "tombstone");
    assert_eq!(recs[3]["key_b64"], "AP8=");
    assert_eq!(recs[3]["value"], "AAEC");
    assert_eq!(recs[3]["value_encoding"], "base64");
    assert_eq!(
        recs[3]["headers"],
        json!([{"key":"h","value":"1"},{"key":"h","value":"2"}])
    );
    assert_eq!(recs[4]["timestamp"], 1700000000000i64);
    assert_eq!(page["next_offset"], 5);
    assert_eq!(page["high_watermark"], 5);
}

#[tokio::test]
async fn ndjson_and_publish_and_partitioning() {
    let a = TestAgent::start(&[]).await;
    a.create_topic("events", 4).await;
    let nd = "{\"key\":\"user-1\",\"value\":1}\n\n{\"key\":\"user-1\",\"value\":2}\r\n{\"partition\":3,\"value\":3}\n";
    let ack = a
        .api
        .post_raw("/v1/topics/events/records", "application/x-ndjson", nd)
        .await
        .expect(200);
    let o = ack["offsets"].as_array().unwrap();
    // Same key, same partition (Kafka's murmur2); explicit partition honoured.
    assert_eq!(o[0]["partition"], o[1]["partition"]);
    assert_eq!(
        o[0]["partition"].as_i64().unwrap(),
        i64::from(streamhouse_server::ingest::partitioner::partition_for_key(
            b"user-1", 4
        ))
    );
    assert_eq!(o[2]["partition"], 3);

    // Unkeyed records spread round-robin.
    let many: Vec<Value> = (0..8).map(|i| json!({"value": i})).collect();
    let ack = a.produce("events", json!({"records": many})).await;
    let mut parts: Vec<i64> = ack["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["partition"].as_i64().unwrap())
        .collect();
    parts.sort();
    assert_eq!(parts, [0, 0, 1, 1, 2, 2, 3, 3]);

    // publish: any body, verbatim, media type kept.
    let ack = a
        .api
        .post_raw(
            "/v1/topics/events/publish?partition=2&key=hook",
            "text/markdown; charset=utf-8",
            "hello\nworld",
        )
        .await
        .expect(200);
    let off = ack["offsets"][0]["offset"].as_i64().unwrap();
    let page = a.read("events", 2, &format!("offset={off}")).await;
    let rec = &page["records"][0];
    assert_eq!(rec["key"], "hook");
    assert_eq!(rec["value_encoding"], "base64");
    assert_eq!(rec["value"], "aGVsbG8Kd29ybGQ=");
    assert_eq!(
        rec["headers"][0],
        json!({"key":"content-type","value":"text/markdown; charset=utf-8"})
    );

    a.api
        .post_raw(
            "/v1/topics/events/publish?partition=1",
            "application/cloudevents+json",
            r#"{"specversion":"1.0","id":"1"}"#,
        )
        .await
        .expect(200);
    let page = a.read("events", 1, "offset=0&limit=100").await;
    let last = page["records"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["value"], json!({"specversion":"1.0","id":"1"}));
    assert_eq!(last["value_encoding"], "json");
}

#[tokio::test]
async fn reads_respect_limits_and_long_poll_waits_for_new_records() {
    let a = TestAgent::start(&[]).await;
    a.create_topic("lp", 1).await;
    let recs: Vec<Value> = (0..50).map(|i| json!({"value": i})).collect();
    a.produce("lp", json!({"records": recs})).await;
    let page = a.read("lp", 0, "offset=10&limit=5").await;
    let offs: Vec<i64> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offs, [10, 11, 12, 13, 14]);
    assert_eq!(page["next_offset"], 15);
    // max_bytes stops early but always returns at least one record.
    let page = a.read("lp", 0, "offset=0&max_bytes=1").await;
    assert_eq!(page["records"].as_array().unwrap().len(), 1);
    // Default offset is the log start.
    let page = a.read("lp", 0, "limit=1").await;
    assert_eq!(page["records"][0]["offset"], 0);

    // A read at the high watermark is valid: empty at once, or waits.
    let page = a.read("lp", 0, "offset=50").await;
    assert_eq!(page["records"].as_array().unwrap().len(), 0);
    let started = Instant::now();
    let page = a.read("lp", 0, "offset=50&wait_ms=300").await;
    assert!(page["records"].as_array().unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(280));

    let api = a.api.clone();
    let waiter = tokio::spawn(async move {
        api.read("lp", 0, "offset=50&wait_ms=10000")
            .await
            .expect(200)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    a.produce("lp", json!({"records": [{"value": "late"}]}))
        .await;
    let page = waiter.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "long-poll woke on the commit"
    );
    assert_eq!(page["records"][0]["offset"], 50);
    assert_eq!(page["records"][0]["value"], "late");
}

#[tokio::test]
async fn seek_by_timestamp_uses_the_running_maximum() {
    let a = TestAgent::start(&[]).await;
    a.create_topic("ts", 1).await;
    // Timestamps out of order within and across requests.
    a.produce("ts", json!({"records": [{"value":0,"timestamp":1000},{"value":1,"timestamp":3000},{"value":2,"timestamp":2000}]})).await;
    a.produce(
        "ts",
        json!({"records": [{"value":3,"timestamp":2500},{"value":4,"timestamp":5000}]}),
    )
    .await;
    let seek = |ts: i64| {
        let api = a.api.clone();
        async move {
            let path = format!("/v1/topics/ts/partitions/0/offsets?timestamp={ts}");
            api.get(&path).await.expect(200)
        }
    };
    assert_eq!(seek(0).await["offset"], 0);
    assert_eq!(seek(1500).await["offset"], 1);
    assert_eq!(seek(3000).await["offset"], 1);
    assert_eq!(seek(3001).await["offset"], 4);
    let past = seek(9999).await;
    assert_eq!(past["offset"], 5, "nothing that recent: the high watermark");
    assert!(past.get("timestamp").is_none());
    let bounds = a
        .api
        .get("/v1/topics/ts/partitions/0/offsets")
        .await
        .expect(200);
    assert_eq!(bounds, json!({"log_start_offset":0,"high_watermark":5}));
}

#[tokio::test]
async fn topics_list_describe_delete_and_recreate() {
    let a = TestAgent::start(&[]).await;
    for name in ["a1", "b2", "c3"] {
        a.create_topic(name, 2).await;
    }
    let z = json!({"name":"z","partitions":1,"compression":"zstd","retention_ms":60000});
    let r = a.api.post("/v1/topics", &z).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.headers["location"], "/v1/topics/z");
    let list = a.api.get("/v1/topics?limit=2").await.expect(200);
    assert_eq!(list["topics"].as_array().unwrap().len(), 2);
    assert_eq!(list["next_after"], "b2");
    let list = a.api.get("/v1/topics?after=b2").await.expect(200);
    let names: Vec<&str> = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c3", "z"]);
    assert_eq!(list["topics"][1]["compression"], "zstd");

    a.produce(
        "a1",
        json!({"records": [{"value": 1, "partition": 1}, {"value": 2, "partition": 1}]}),
    )
    .await;
    let d = a.api.describe("a1").await.expect(200);
    assert_eq!(d["partitions"], 2);
    assert_eq!(d["partition_details"][1]["high_watermark"], 2);
    assert!(d["partition_details"][1]["bytes"].as_i64().unwrap() > 0);
    let d = a
        .api
        .get("/v1/topics/a1?partition_from=1&partition_limit=1")
        .await
        .expect(200);
    assert_eq!(d["partition_details"].as_array().unwrap().len(), 1);
    assert_eq!(d["next_partition"], Value::Null);

    a.api.delete("/v1/topics/a1").await.expect(204);
    a.api.read("a1", 1, "offset=0").await.expect(404);
    a.api.delete("/v1/topics/a1").await.expect(404);
    // The name is free at once and the new topic starts empty at offset 0.
    a.create_topic("a1", 2).await;
    let page = a.read("a1", 1, "offset=0").await;
    assert_eq!(page["high_watermark"], 0);
    let ack = a
        .produce("a1", json!({"records": [{"value": "new", "partition": 1}]}))
        .await;
    assert_eq!(ack["offsets"][0]["offset"], 0);
}

#[tokio::test]
async fn compressed_topics_store_and_return_the_same_records() {
    let a = TestAgent::start(&[]).await;
    for c in ["lz4", "zstd"] {
        let topic = json!({"name": c, "partitions": 1, "compression": c});
        a.api.post("/v1/topics", &topic).await.expect(201);
        let recs: Vec<Value> = (0..200)
            .map(|i| json!({"key": format!("k{i}"), "value": {"n": i, "pad": "x".repeat(50)}}))
            .collect();
        a.produce(c, json!({"records": recs})).await;
        let page = a.read(c, 0, "offset=0&limit=1000").await;
        let got = page["records"].as_array().unwrap();
        assert_eq!(got.len(), 200);
        assert_eq!(got[199]["value"]["n"], 199);
        assert_eq!(got[7]["key"], "k7");
        // Paging through the chunk decompresses it once, not once per page.
        let before = a.metrics.chunks_decompressed.get();
        for from in (0..200).step_by(10) {
            let page = a.read(c, 0, &format!("offset={from}&limit=10")).await;
            assert_eq!(page["records"][0]["value"]["n"], from);
            assert_eq!(page["records"].as_array().unwrap().len(), 10);
        }
        assert_eq!(
            a.metrics.chunks_decompressed.get(),
            before,
            "{c}: kept decompressed"
        );
    }
}

#[tokio::test]
async fn a_topic_s_settings_change_with_patch() {
    let a = TestAgent::start(&[]).await;
    a.api.create_topic("t", 1).await.expect(201);
    a.produce("t", json!({"records": [{"value": "before"}]}))
        .await;
    let patch = |body: Value| {
        let api = a.api.clone();
        async move {
            api.send(|c, u| c.patch(u).json(&body), "/v1/topics/t")
                .await
        }
    };
    let changed = patch(json!({"compression": "zstd", "retention_ms": 3_600_000}))
        .await
        .expect(200);
    assert_eq!(changed["compression"], "zstd");
    assert_eq!(changed["retention_ms"], 3_600_000);
    // Chunks flushed from now on are compressed; older ones read as before.
    let recs: Vec<Value> = (0..100)
        .map(|i| json!({"value": if i == 0 { json!("after") } else { json!("x".repeat(60)) }}))
        .collect();
    a.produce("t", json!({"records": recs})).await;
    let before = a.metrics.chunks_decompressed.get();
    let page = a.read("t", 0, "offset=0").await;
    assert_eq!(page["records"][0]["value"], "before");
    assert_eq!(page["records"][1]["value"], "after");
    assert!(
        a.metrics.chunks_decompressed.get() > before,
        "the new chunk is zstd"
    );
    // null: keep forever; absent: unchanged.
    let changed = patch(json!({"retention_ms": null})).await.expect(200);
    assert!(changed["retention_ms"].is_null());
    assert_eq!(changed["compression"], "zstd");
    assert_eq!(
        a.api.describe("t").await.expect(200)["retention_ms"],
        Value::Null
    );
    for (body, field) in [
        (json!({"retention_ms": 0}), "retention_ms"),
        (json!({"compression": "gzip"}), "body"),
        (json!({"partitions": 3}), "body"),
    ] {
        let r = patch(body).await;
        assert_eq!(
            (r.status, r.body["field"].as_str()),
            (400, Some(field)),
            "{}",
            r.text
        );
    }
    let r = a
        .api
        .send(|c, u| c.patch(u).json(&json!({})), "/v1/topics/nope")
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn deleting_a_topic_while_producing_never_exposes_its_records() {
    let a = TestAgent::start(&["--linger", "50ms"]).await;
    a.create_topic("gone", 2).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let api = a.api.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 5)).await;
            api.produce("gone", json!([{"value": i}])).await.status
        }));
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    a.api.delete("/v1/topics/gone").await.expect(204);
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 200 || s == 404, "status {s}");
    }
    a.create_topic("gone", 2).await;
    for p in 0..2 {
        let page = a.read("gone", p, "offset=0").await;
        assert_eq!(
            page["high_watermark"], 0,
            "the new topic holds nothing of the old one"
        );
    }
}

#[tokio::test]
async fn a_reader_paging_on_finds_its_next_chunk_fetched_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let a = TestAgent::start_with(common::serve_args(&["--data-dir", data])).await;
    a.create_topic("t", 1).await;
    // Four acknowledged produces: four flushes, four chunks of ten.
    for i in 0..4 {
        let recs: Vec<Value> = (0..10).map(|j| json!({"value": i * 10 + j})).collect();
        a.produce("t", json!({"records": recs})).await;
    }
    a.stop().await;

    // A restarted agent holds no chunk in memory: each costs a GET.
    let b = TestAgent::start_with(common::serve_args(&["--data-dir", data])).await;
    let ahead = |n: u64| {
        let m = b.metrics.clone();
        common::wait_for("read-ahead", Duration::from_secs(10), move || {
            let done = m.chunks_read_ahead.get() >= n;
            async move { done.then_some(()) }
        })
    };
    // A page ending inside the first chunk fetches the second ahead.
    let gets = b.metrics.object_gets.get();
    let page = b.read("t", 0, "offset=0&limit=5").await;
    assert_eq!(page["records"][4]["value"], 4);
    ahead(1).await;
    assert_eq!(
        b.metrics.object_gets.get(),
        gets + 2,
        "the first two chunks"
    );
    let gets = b.metrics.object_gets.get();
    // The next page (the rest of the first chunk and half the second) is
    // in memory; it ends inside the second, so the third is fetched ahead.
    let page = b.read("t", 0, "offset=5&limit=10").await;
    assert_eq!(page["records"][0]["value"], 5);
    assert_eq!(page["records"][9]["value"], 14);
    ahead(2).await;
    assert_eq!(
        b.metrics.object_gets.get(),
        gets + 1,
        "only the third chunk"
    );
    // A page that does not fill up (the reader is at the end) fetches
    // nothing ahead.
    let page = b.read("t", 0, "offset=15&limit=100").await;
    assert_eq!(page["records"].as_array().unwrap().len(), 25);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.metrics.chunks_read_ahead.get(), 2);
    b.stop().await;

    // With a chunk cache too small to hold a chunk fetched ahead for long,
    // none is.
    let c = TestAgent::start_with(common::serve_args(&[
        "--data-dir",
        data,
        "--chunk-cache-bytes",
        "1KiB",
    ]))
    .await;
    let page = c.read("t", 0, "offset=0&limit=5").await;
    assert_eq!(page["records"][4]["value"], 4);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.metrics.chunks_read_ahead.get(), 0);
}
