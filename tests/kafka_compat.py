"""Builds and parses Kafka v2 record batches with kafka-python, for the
byte-compatibility test (tests/kafka_compat.rs). Reads one JSON request on
stdin, writes one JSON answer on stdout. Bytes travel as hex."""
import json
import sys

from kafka.partitioner.default import murmur2
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

CODECS = {"none": 0, "lz4": DefaultRecordBatchBuilder.CODEC_LZ4, "zstd": DefaultRecordBatchBuilder.CODEC_ZSTD}


def unhex(v):
    return None if v is None else bytes.fromhex(v)


def tohex(v):
    return None if v is None else bytes(v).hex()


def build(req):
    b = DefaultRecordBatchBuilder(
        magic=2, compression_type=CODECS[req["compression"]], is_transactional=0,
        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for i, r in enumerate(req["records"]):
        headers = [(k, unhex(v)) for k, v in r["headers"]]
        assert b.append(i, timestamp=r["timestamp"], key=unhex(r["key"]), value=unhex(r["value"]), headers=headers)
    return {"batch": bytes(b.build()).hex()}


def parse(req):
    batch = DefaultRecordBatch(bytes.fromhex(req["batch"]))
    assert batch.validate_crc(), "CRC-32C does not validate"
    out = []
    for r in batch:
        out.append({"offset": r.offset, "timestamp": r.timestamp, "key": tohex(r.key), "value": tohex(r.value),
                    "headers": [[k, tohex(v)] for k, v in r.headers]})
    return {"records": out, "base_offset": batch.base_offset, "compression": batch.compression_type,
            "last_offset_delta": batch.last_offset_delta, "max_timestamp": batch.max_timestamp}


def hashes(req):
    return {"murmur2": [murmur2(bytes.fromhex(k)) for k in req["keys"]]}


req = json.load(sys.stdin)
print(json.dumps({"build": build, "parse": parse, "murmur2": hashes}[req["op"]](req)))
