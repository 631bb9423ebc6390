#!/usr/bin/env bash
# Cross-builds shipd for the Pis (aarch64: Pi 3/4/5 on 64-bit Raspberry Pi
# OS; armv7: 32-bit Raspberry Pi OS) and runs, under qemu-user, the unit
# tests and the integration tests that prove delivery and no loss. Installs
# what it needs (idempotently): Debian's cross gcc and libc, qemu-user-static,
# the rustup targets.
#
#   ./cross-test.sh                 # both targets
#   ./cross-test.sh armv7-unknown-linux-gnueabihf
#
# Built with the `package-ci` profile (release without LTO): package.sh then
# packages the same binaries without building again.
#
# Left out of the emulated run (they run natively in ./test.sh): the tests of
# peers that are host programs found by path or built for the host (nginx
# TLS, Python OTLP decoding, node_exporter, Ansible/hadolint deploy checks,
# benchmarks' harness), and the lang fuzz/property suites, whose thousands of
# cases take minutes under emulation and exercise no word-size-dependent
# code beyond what the unit tests cover.
set -euo pipefail
cd "$(dirname "$0")"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

need_apt=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user-static; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
installed_targets="$(rustup target list --installed)"
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$installed_targets" || rustup target add "$t"
done

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="qemu-arm-static -L /usr/arm-linux-gnueabihf"

for t in "${targets[@]}"; do
  runner_var="CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$t")_RUNNER"
  # The tests start the cross-built shipd themselves: through qemu too, since
  # binfmt_misc is not registered in every container.
  export SHIPD_TEST_EXEC_WRAPPER="${!runner_var}"
  echo "== $t: unit tests and delivery/no-loss integration tests under qemu"
  cargo test --locked --profile package-ci --target "$t" --no-fail-fast \
    --lib --bins \
    --test delivery --test faults --test files --test spill --test journald --test word_size
done
