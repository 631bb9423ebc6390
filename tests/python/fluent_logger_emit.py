#!/usr/bin/env python3
"""Emits events with Python's fluent-logger (PyPI `fluent-logger`), the
library apps use: FluentSender in Message mode with EventTime
(nanosecond_precision). Usage: fluent_logger_emit.py PORT COUNT.
Prints {"emitted": n} or fails with the sender's last error."""

import json
import sys

from fluent import sender


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    logger = sender.FluentSender("app", host="127.0.0.1", port=port, nanosecond_precision=True)
    for i in range(count):
        ok = logger.emit("orders", {"message": f"order {i}", "level": "warn", "order": {"id": i, "items": [1, 2]}})
        if not ok:
            print(f"emit {i} failed: {logger.last_error}", file=sys.stderr)
            sys.exit(1)
    logger.close()
    print(json.dumps({"emitted": count}))


if __name__ == "__main__":
    main()
