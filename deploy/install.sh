#!/usr/bin/env bash
# Installs shipd on one node: binaries, systemd unit, settings template,
# the `shipd` user (groups systemd-journal, adm) and its directories.
# Idempotent: a second run changes nothing and says so. Settings the operator
# edited (/etc/shipd/shipd.env) are never overwritten.
#
#   sudo deploy/install.sh                    # install or upgrade, enable and (re)start
#   sudo deploy/install.sh --uninstall        # stop, remove binaries and unit; keep settings and state
#   sudo deploy/install.sh --uninstall --purge  # ... and settings, state and the user
#   deploy/install.sh --root /tmp/r           # everything under /tmp/r (tests, images); no systemctl
#   deploy/install.sh --bin-dir DIR           # take shipd and shipctl from DIR (default: target/release)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root=""
bin_dir="$here/../target/release"
mode=install
purge=false

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --bin-dir) bin_dir="${2:?--bin-dir needs a directory}"; shift 2 ;;
    --uninstall) mode=uninstall; shift ;;
    --purge) purge=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [ -n "$root" ]; then
  mkdir -p "$root"
  root="$(cd "$root" && pwd)"
fi

user=shipd
changed=0
say() { echo "install.sh: $*"; }
note_change() { changed=$((changed + 1)); say "$*"; }

# systemctl only on the real root of a host booted with systemd.
use_systemctl() { [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

# useradd/groupadd/usermod act on $root/etc/{passwd,group,...} via --prefix.
prefix_args() { if [ -n "$root" ]; then echo "--prefix $root"; fi; }

user_exists() { grep -q "^$user:" "$root/etc/passwd" 2>/dev/null; }
group_exists() { grep -q "^$1:" "$root/etc/group" 2>/dev/null; }
in_group() { grep -Eq "^$1:[^:]*:[^:]*:(.*,)?$user(,|$)" "$root/etc/group" 2>/dev/null; }
uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "$root/etc/passwd"; }
gid_of() { awk -F: -v g="$1" '$1 == g { print $3 }' "$root/etc/group"; }

# install_file SRC DEST MODE [OWNER:GROUP as names]: copies only when different.
install_file() {
  local src="$1" dest="$2" mode="$3"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    ensure_mode "$dest" "$mode"
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  install -m "$mode" "$src" "$dest.shipd-new"
  mv -f "$dest.shipd-new" "$dest"
  note_change "installed ${dest#"$root"}"
}

ensure_mode() {
  local path="$1" mode="$2"
  if [ "$(stat -c %a "$path")" != "${mode#0}" ]; then
    chmod "$mode" "$path"
    note_change "mode $mode on ${path#"$root"}"
  fi
}

# ensure_dir PATH MODE OWNER GROUP (names resolved in $root/etc).
ensure_dir() {
  local path="$1" mode="$2" owner="$3" group="$4" uid gid
  if [ ! -d "$path" ]; then
    mkdir -p "$path"
    note_change "created ${path#"$root"}"
  fi
  ensure_mode "$path" "$mode"
  uid="$(uid_of "$owner")"; gid="$(gid_of "$group")"
  if [ -n "$uid" ] && [ -n "$gid" ] && [ "$(stat -c %u:%g "$path")" != "$uid:$gid" ]; then
    chown "$uid:$gid" "$path"
    note_change "owner $owner:$group on ${path#"$root"}"
  fi
}

install_agent() {
  for b in shipd shipctl; do
    [ -x "$bin_dir/$b" ] || { echo "install.sh: $bin_dir/$b not found; build with cargo build --release or pass --bin-dir" >&2; exit 1; }
  done

  # shellcheck disable=SC2046
  if ! user_exists; then
    useradd $(prefix_args) --system --user-group --home-dir /var/lib/shipd \
      --no-create-home --shell /usr/sbin/nologin --comment "shipd log shipper" "$user"
    note_change "created user $user"
  fi
  for g in systemd-journal adm; do
    if group_exists "$g" && ! in_group "$g"; then
      # shellcheck disable=SC2046
      usermod $(prefix_args) --append --groups "$g" "$user"
      note_change "added $user to group $g"
    elif ! group_exists "$g"; then
      say "group $g does not exist; skipped"
    fi
  done

  install_file "$bin_dir/shipd" "$root/usr/local/bin/shipd" 0755
  install_file "$bin_dir/shipctl" "$root/usr/local/bin/shipctl" 0755
  install_file "$here/systemd/shipd.service" "$root/etc/systemd/system/shipd.service" 0644
  ensure_dir "$root/etc/shipd" 0750 root "$user"
  if [ ! -f "$root/etc/shipd/shipd.env" ]; then
    install_file "$here/shipd.env" "$root/etc/shipd/shipd.env" 0640
  fi
  ensure_dir "$root/var/lib/shipd" 0750 "$user" "$user"

  if use_systemctl; then
    systemctl daemon-reload
    systemctl enable shipd.service >/dev/null 2>&1
    if [ "$changed" -gt 0 ] || ! systemctl is-active --quiet shipd.service; then
      systemctl restart shipd.service
      say "restarted shipd.service"
    fi
  else
    if [ -n "$root" ]; then say "not touching systemd (--root $root)"; else say "systemd is not running here; start shipd by hand"; fi
  fi
  say "done, $changed changed"
  if [ ! -f "$root/etc/shipd/openobserve-password" ]; then
    say "next: edit /etc/shipd/shipd.env and put the OpenObserve password in /etc/shipd/openobserve-password (mode 0640, group $user)"
  fi
}

remove_path() {
  if [ -e "$1" ]; then
    rm -rf "$1"
    note_change "removed ${1#"$root"}"
  fi
}

uninstall_agent() {
  if use_systemctl && systemctl list-unit-files shipd.service >/dev/null 2>&1; then
    systemctl disable --now shipd.service >/dev/null 2>&1 || true
  fi
  remove_path "$root/usr/local/bin/shipd"
  remove_path "$root/usr/local/bin/shipctl"
  remove_path "$root/etc/systemd/system/shipd.service"
  if use_systemctl; then systemctl daemon-reload; fi
  if $purge; then
    remove_path "$root/etc/shipd"
    remove_path "$root/var/lib/shipd"
    if user_exists; then
      # shellcheck disable=SC2046
      userdel $(prefix_args) "$user"
      note_change "removed user $user"
    fi
  else
    say "kept /etc/shipd and /var/lib/shipd (use --purge to remove them and the user)"
  fi
  say "done, $changed changed"
}

case "$mode" in
  install) install_agent ;;
  uninstall) uninstall_agent ;;
esac
