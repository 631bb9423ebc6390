#!/usr/bin/env bash
# Builds the Debian packages of shipd with cargo-deb and checks them with lintian.
#
#   ./package.sh                          # amd64, arm64 and armhf, profile release
#   ./package.sh arm64                    # only the 64-bit Raspberry Pi OS package
#   ./package.sh --profile package-ci     # CI: release without LTO, much faster to build
#
# Writes target/debian/shipd_<version>_<arch>.deb for each architecture (amd64:
# x86_64 PCs and servers; arm64: 64-bit Raspberry Pi OS, Pi 3/4/5; armhf:
# 32-bit Raspberry Pi OS), prints each package's control fields, contents and
# lintian's report, and fails when lintian reports an error. Installs what it
# needs on Debian 12 first when missing (apt-get as root, rustup targets,
# cargo-deb); a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
profile=release
archs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?--profile needs a Cargo profile}"; shift 2 ;;
    --profile=*) profile="${1#--profile=}"; shift ;;
    amd64|arm64|armhf) archs+=("$1"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "package.sh: unknown option or architecture $1 (amd64, arm64, armhf)" >&2; usage >&2; exit 2 ;;
  esac
done
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64 armhf)

triple_of() {
  case "$1" in
    amd64) echo x86_64-unknown-linux-gnu ;;
    arm64) echo aarch64-unknown-linux-gnu ;;
    armhf) echo armv7-unknown-linux-gnueabihf ;;
  esac
}

# --- tools (idempotent) ------------------------------------------------------
need_apt=()
for p in dpkg-dev lintian gcc libc6-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
for arch in "${archs[@]}"; do
  case "$arch" in
    arm64) cross=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
    armhf) cross=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross) ;;
    *) cross=() ;;
  esac
  for p in "${cross[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
  done
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "package.sh: installing ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
installed_targets="$(rustup target list --installed)"
for arch in "${archs[@]}"; do
  triple="$(triple_of "$arch")"
  grep -qx "$triple" <<<"$installed_targets" || rustup target add "$triple"
done
if ! cargo deb --version >/dev/null 2>&1; then
  echo "package.sh: installing cargo-deb"
  cargo install cargo-deb --locked
fi

# The cross linkers (also in .cargo/config.toml); the cc crate finds the C
# compilers for zstd by the same prefix.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc

# --- the package's unit ------------------------------------------------------
# deploy/systemd/shipd.service runs /usr/local/bin/shipd (install.sh, Ansible);
# the package installs the binaries in /usr/bin. cargo-deb takes the unit from
# here (Cargo.toml, [package.metadata.deb] systemd-units).
unit_dir=target/debian-unit
mkdir -p "$unit_dir"
sed -e 's|^ExecStart=/usr/local/bin/shipd|ExecStart=/usr/bin/shipd|' \
    -e 's|^# shipd: one per node. Installed as /etc/systemd/system/shipd.service by$|# shipd: one per node. Installed by the shipd Debian package as|' \
    -e 's|^# deploy/install.sh or the Ansible role; settings|# /usr/lib/systemd/system/shipd.service; settings|' \
    deploy/systemd/shipd.service > "$unit_dir/shipd.service.new"
if ! grep -qx 'ExecStart=/usr/bin/shipd' "$unit_dir/shipd.service.new"; then
  echo "package.sh: deploy/systemd/shipd.service has no ExecStart=/usr/local/bin/shipd line to rewrite" >&2
  exit 1
fi
mv -f "$unit_dir/shipd.service.new" "$unit_dir/shipd.service"

# --- build, inspect, lint ----------------------------------------------------
# check_cross_depends ARCH DEB: the cross packages declare "libc6 (>= 2.34)"
# (Cargo.toml, variant cross); their binaries must need nothing more.
check_cross_depends() {
  local arch="$1" deb="$2" objdump bin dir needed newest
  case "$arch" in
    amd64) objdump=x86_64-linux-gnu-objdump ;;
    arm64) objdump=aarch64-linux-gnu-objdump ;;
    armhf) objdump=arm-linux-gnueabihf-objdump ;;
  esac
  dir="$(mktemp -d)"
  dpkg-deb -x "$deb" "$dir"
  for bin in shipd shipctl; do
    needed="$("$objdump" -p "$dir/usr/bin/$bin" | awk '$1 == "NEEDED" { print $2 }' \
      | grep -Ev '^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libutil\.so\.1|libgcc_s\.so\.1|ld-linux.*)$' || true)"
    newest="$("$objdump" -T "$dir/usr/bin/$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)"
    if [ -n "$needed" ] || [ "$(printf '%s\n' "$newest" GLIBC_2.34 | sort -V | tail -n 1)" != GLIBC_2.34 ]; then
      rm -rf "$dir"
      echo "package.sh: $arch $bin needs ${needed:+$needed and }$newest: update depends of [package.metadata.deb.variants.cross] in Cargo.toml" >&2
      exit 1
    fi
  done
  rm -rf "$dir"
}

host_arch="$(dpkg --print-architecture)"
mkdir -p target/debian
debs=()
for arch in "${archs[@]}"; do
  triple="$(triple_of "$arch")"
  echo "package.sh: building $arch ($triple, profile $profile)"
  # $auto (dpkg-shlibdeps) for this machine's architecture, else variant cross.
  variant=()
  [ "$arch" = "$host_arch" ] || variant=(--variant cross)
  # cargo-deb prints the path of the package it wrote as its last line.
  deb="$(cargo deb --locked --profile "$profile" --target "$triple" "${variant[@]}" --output target/debian/ | tail -n 1)"
  [ -f "$deb" ] || { echo "package.sh: cargo deb wrote no package for $arch" >&2; exit 1; }
  [ "$arch" = "$host_arch" ] || check_cross_depends "$arch" "$deb"
  debs+=("$deb")
done

failed=()
for deb in "${debs[@]}"; do
  echo
  echo "=== $deb"
  dpkg-deb --field "$deb"
  echo "--- contents"
  dpkg-deb --contents "$deb"
  echo "--- lintian"
  set +e
  report="$(lintian --fail-on error --tag-display-limit 0 "$deb" 2>&1)"
  rc=$?
  set -e
  # As root lintian says it would rather not be; the package is what counts.
  report="$(grep -v 'running with root privileges' <<<"$report" || true)"
  if [ -n "$report" ]; then echo "$report"; else echo "(no tags)"; fi
  [ "$rc" -eq 0 ] || failed+=("$deb")
done
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "package.sh: lintian reports errors in ${failed[*]}" >&2
  exit 1
fi
echo "package.sh: built ${debs[*]}"
