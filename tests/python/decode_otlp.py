"""Decodes captured OTLP/HTTP request bodies with the official
opentelemetry-proto classes (an implementation independent of shipd).

Usage: decode_otlp.py DIR  -- every DIR/*.bin is a body as sent on the wire,
gzip- or zstd-compressed or raw protobuf. Prints one JSON object with the
record count, the bodies and the resource attributes seen.
"""
import gzip
import json
import pathlib
import sys

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest


def any_value(v):
    kind = v.WhichOneof("value")
    return None if kind is None else getattr(v, kind)


def main(directory):
    records, bodies, resource_keys, uids = 0, [], set(), set()
    for path in sorted(pathlib.Path(directory).glob("*.bin")):
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        req = ExportLogsServiceRequest()
        req.ParseFromString(data)
        for rl in req.resource_logs:
            resource_keys.update(kv.key for kv in rl.resource.attributes)
            for sl in rl.scope_logs:
                for lr in sl.log_records:
                    records += 1
                    bodies.append(any_value(lr.body))
                    for kv in lr.attributes:
                        if kv.key == "log.record.uid":
                            uids.add(any_value(kv.value))
    print(json.dumps({"records": records, "bodies": bodies,
                      "resource_keys": sorted(resource_keys), "uids": len(uids)}))


if __name__ == "__main__":
    main(sys.argv[1])
