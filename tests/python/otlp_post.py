"""Posts OTLP logs and metrics to an OTLP/HTTP receiver, built with the
official opentelemetry-proto classes (an implementation independent of
shipd) and gzip-compressed by Python's own gzip.

Usage: otlp_post.py BASE_URL TAG  -- posts 3 log records (bodies
"TAG-0".."TAG-2") and one gauge "TAG.temperature" to BASE_URL/v1/logs and
BASE_URL/v1/metrics. Prints one JSON object with the HTTP status of each
post and whether each answer decodes as the export response.
"""
import gzip
import json
import sys
import time
import urllib.request

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint


def kv(key, value):
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def post(url, message, response_type):
    body = gzip.compress(message.SerializeToString())
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = response_type()
        answer.ParseFromString(resp.read())
        return resp.status, not answer.HasField("partial_success")


def main(base, tag):
    now = time.time_ns()
    logs = ExportLogsServiceRequest()
    rl = logs.resource_logs.add()
    rl.resource.attributes.extend([kv("service.name", "py-" + tag), kv("deployment.environment", "test")])
    sl = rl.scope_logs.add()
    sl.scope.name = "python-client"
    for i in range(3):
        sl.log_records.append(
            LogRecord(
                time_unix_nano=now + i,
                severity_number=9,
                severity_text="INFO",
                body=AnyValue(string_value=f"{tag}-{i}"),
                attributes=[kv("index", i), kv("client", "python")],
            )
        )
    metrics = ExportMetricsServiceRequest()
    rm = metrics.resource_metrics.add()
    rm.resource.attributes.extend([kv("service.name", "py-" + tag)])
    sm = rm.scope_metrics.add()
    metric = Metric(name=f"{tag}.temperature", unit="Cel")
    metric.gauge.data_points.append(
        NumberDataPoint(time_unix_nano=now, as_double=21.5, attributes=[kv("room", "lab")])
    )
    sm.metrics.append(metric)
    report = {
        "logs": post(base + "/v1/logs", logs, ExportLogsServiceResponse),
        "metrics": post(base + "/v1/metrics", metrics, ExportMetricsServiceResponse),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
