#!/usr/bin/env bash
# Installs shipd on one node: binaries, systemd unit, settings template,
# the `shipd` user (groups systemd-journal, adm) and its directories; or,
# with --deb/--deb-dir on a node with dpkg, the Debian package (./package.sh).
# Idempotent: a second run changes nothing and says so. Settings the operator
# edited (/etc/shipd/shipd.env) are never overwritten.
#
#   sudo deploy/install.sh                    # install or upgrade, enable and (re)start
#   sudo deploy/install.sh --uninstall        # stop, remove binaries and unit; keep settings and state
#   sudo deploy/install.sh --uninstall --purge  # ... and settings, state and the user
#   deploy/install.sh --root /tmp/r           # everything under /tmp/r (tests, images); no systemctl
#   deploy/install.sh --bin-dir DIR           # take shipd and shipctl from DIR (default: target/release)
#   sudo deploy/install.sh --deb shipd_0.1.0-1_arm64.deb   # install that package (apt-get) instead
#   sudo deploy/install.sh --deb-dir DIR      # the package for this node (shipd_*_$(dpkg --print-architecture).deb)
#                                             # from DIR; none there: binaries as above
#   sudo deploy/install.sh --ca-file ca.pem   # also trust this CA: /etc/shipd/ca.pem, OPENOBSERVE_CA_FILE
#   sudo deploy/install.sh --ca-file ca.pem --client-cert web1.pem --client-key web1.key
#                                             # mutual TLS: /etc/shipd/client.pem and client.key (0640,
#                                             # group shipd), OPENOBSERVE_CERT_FILE, OPENOBSERVE_KEY_FILE
# The TLS options set their variable in /etc/shipd/shipd.env (uncommenting or
# adding the line) unless the file already sets it to something else.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root=""
bin_dir="$here/../target/release"
mode=install
purge=false
ca_file=""
client_cert=""
client_key=""
deb=""
deb_dir=""

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --bin-dir) bin_dir="${2:?--bin-dir needs a directory}"; shift 2 ;;
    --deb) deb="${2:?--deb needs a .deb file}"; shift 2 ;;
    --deb-dir) deb_dir="${2:?--deb-dir needs a directory}"; shift 2 ;;
    --ca-file) ca_file="${2:?--ca-file needs a PEM file}"; shift 2 ;;
    --client-cert) client_cert="${2:?--client-cert needs a PEM file}"; shift 2 ;;
    --client-key) client_key="${2:?--client-key needs a PEM file}"; shift 2 ;;
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
# need_pem FILE WHAT PATTERN: FILE is readable and holds a PEM block of that kind.
need_pem() {
  if [ ! -r "$1" ] || ! grep -Eq -- "-----BEGIN $3-----" "$1"; then
    echo "install.sh: $1 is not a readable PEM $2" >&2; exit 2
  fi
}
if { [ -n "$client_cert" ] && [ -z "$client_key" ]; } || { [ -z "$client_cert" ] && [ -n "$client_key" ]; }; then
  echo "install.sh: --client-cert and --client-key go together (mutual TLS needs both)" >&2; exit 2
fi
if [ -n "$deb" ] && [ -n "$deb_dir" ]; then
  echo "install.sh: --deb and --deb-dir exclude each other" >&2; exit 2
fi
if [ -n "$deb" ] && [ ! -f "$deb" ]; then
  echo "install.sh: $deb is not a file" >&2; exit 2
fi
if [ -n "$deb_dir" ] && [ ! -d "$deb_dir" ]; then
  echo "install.sh: $deb_dir is not a directory" >&2; exit 2
fi
[ -z "$ca_file" ] || need_pem "$ca_file" "CA certificate" "CERTIFICATE"
[ -z "$client_cert" ] || need_pem "$client_cert" "certificate" "CERTIFICATE"
[ -z "$client_key" ] || need_pem "$client_key" "private key" "([A-Z]+ )?PRIVATE KEY"

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

# ensure_group PATH GROUP: root:GROUP (names resolved in $root/etc), when the group exists.
ensure_group() {
  local path="$1" gid
  gid="$(gid_of "$2")"
  if [ -n "$gid" ] && [ "$(stat -c %u:%g "$path")" != "0:$gid" ]; then
    chown "0:$gid" "$path"
    note_change "owner root:$2 on ${path#"$root"}"
  fi
}

# ensure_env VAR VALUE: shipd.env sets VAR=VALUE. A commented #VAR= line is
# replaced, else the line is appended; a VAR the operator set otherwise is kept.
ensure_env() {
  local var="$1" value="$2" env="$root/etc/shipd/shipd.env" current
  current="$(grep -E "^$var=" "$env" | tail -n 1 || true)"
  if [ "$current" = "$var=$value" ]; then
    return 0
  elif [ -n "$current" ]; then
    say "kept $current in /etc/shipd/shipd.env (not $var=$value)"
    return 0
  fi
  if grep -Eq "^#[[:space:]]*$var=" "$env"; then
    awk -v var="$var" -v line="$var=$value" '
      !done && $0 ~ "^#[[:space:]]*" var "=" { print line; done = 1; next } { print }
    ' "$env" > "$env.shipd-new"
    cat "$env.shipd-new" > "$env"
    rm -f "$env.shipd-new"
  else
    # The operator's file may lack its final newline.
    if [ -s "$env" ] && [ "$(tail -c 1 "$env")" != "" ]; then echo >> "$env"; fi
    printf '%s=%s\n' "$var" "$value" >> "$env"
  fi
  note_change "set $var=$value in /etc/shipd/shipd.env"
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

# The Debian package: only on this machine's own root, with dpkg and apt-get.
have_dpkg() { [ -z "$root" ] && command -v dpkg >/dev/null && command -v apt-get >/dev/null; }
package_status() { dpkg-query -W -f='${db:Status-Status}' shipd 2>/dev/null || true; }
package_installed() { [ "$(package_status)" = "installed" ]; }
# Known to dpkg: installed, or removed with its settings kept (config-files).
package_known() { case "$(package_status)" in ""|not-installed) return 1 ;; *) return 0 ;; esac; }

# choose_deb: sets $deb from --deb-dir (the newest package for this
# architecture), or leaves it empty (then binaries from --bin-dir).
choose_deb() {
  local arch found
  if [ -n "$deb" ]; then
    if [ -n "$root" ]; then
      echo "install.sh: --deb installs a package on this machine, not under --root" >&2; exit 2
    fi
    if ! have_dpkg; then
      echo "install.sh: --deb needs dpkg and apt-get (a Debian-based system)" >&2; exit 1
    fi
    arch="$(dpkg --print-architecture)"
    if [ "$(dpkg-deb --field "$deb" Architecture)" != "$arch" ]; then
      echo "install.sh: $deb is for $(dpkg-deb --field "$deb" Architecture), this node is $arch" >&2; exit 1
    fi
    return 0
  fi
  [ -n "$deb_dir" ] || return 0
  if ! have_dpkg; then
    say "no dpkg here (or --root): installing the binaries from $bin_dir instead of a package"
    return 0
  fi
  arch="$(dpkg --print-architecture)"
  found="$(find "$deb_dir" -maxdepth 1 -name "shipd_*_$arch.deb" | sort -V | tail -n 1)"
  if [ -n "$found" ]; then
    deb="$found"
  else
    say "no shipd_*_$arch.deb in $deb_dir: installing the binaries from $bin_dir instead"
  fi
}

# install_package: apt-get installs $deb unless that version is installed. The
# package creates the user, /etc/shipd, /var/lib/shipd and enables the unit.
install_package() {
  local version
  version="$(dpkg-deb --field "$deb" Version)"
  if package_installed && [ "$(dpkg-query -W -f='${Version}' shipd)" = "$version" ]; then
    return 0
  fi
  # apt-get takes a local file by a path with a slash.
  # (Waits for a running apt, e.g. unattended-upgrades, instead of failing.)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold \
    "$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")"
  note_change "installed package shipd $version ($deb)"
  # What this script installs without the package would shadow it: the unit
  # in /etc/systemd/system wins over the package's in /usr/lib/systemd/system.
  remove_path /usr/local/bin/shipd
  remove_path /usr/local/bin/shipctl
  if grep -qx 'ExecStart=/usr/local/bin/shipd' /etc/systemd/system/shipd.service 2>/dev/null; then
    remove_path /etc/systemd/system/shipd.service
  elif [ -e /etc/systemd/system/shipd.service ]; then
    say "kept /etc/systemd/system/shipd.service (edited?); it overrides the package's unit"
  fi
}

install_agent() {
  choose_deb
  if [ -n "$deb" ]; then
    install_package
  else
    install_files
  fi

  install_tls
  finish_install
}

# install_files: the binaries, the unit, the user and the directories.
install_files() {
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
}

# install_tls: --ca-file, --client-cert and --client-key into /etc/shipd.
install_tls() {
  if [ -n "$ca_file" ]; then
    install_file "$ca_file" "$root/etc/shipd/ca.pem" 0644
    ensure_env OPENOBSERVE_CA_FILE /etc/shipd/ca.pem
  fi
  if [ -n "$client_cert" ]; then
    install_file "$client_cert" "$root/etc/shipd/client.pem" 0644
    install_file "$client_key" "$root/etc/shipd/client.key" 0640
    ensure_group "$root/etc/shipd/client.key" "$user"
    ensure_env OPENOBSERVE_CERT_FILE /etc/shipd/client.pem
    ensure_env OPENOBSERVE_KEY_FILE /etc/shipd/client.key
  fi
}

finish_install() {
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
  # Installed as a package (or removed, its settings kept): apt-get undoes it.
  if have_dpkg && package_known; then
    if $purge; then
      DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 shipd
      note_change "purged package shipd (settings, state and the user with it)"
    elif package_installed; then
      DEBIAN_FRONTEND=noninteractive apt-get remove -y -q -o DPkg::Lock::Timeout=300 shipd
      note_change "removed package shipd"
    fi
    if ! $purge; then say "kept /etc/shipd and /var/lib/shipd (use --purge to remove them and the user)"; fi
    say "done, $changed changed"
    return 0
  fi
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
