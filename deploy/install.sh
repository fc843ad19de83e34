#!/usr/bin/env bash
# Installs Kelp on a systemd host: the binary, the `kelp` system user, /etc/kelp and
# /var/lib/kelp, the unit templates, and a configuration file per instance made with
# `kelp scaffold` (an existing file is never overwritten).
#
#   deploy/install.sh [--binary PATH] [--root DIR] [--master NAME]... [--volume NAME]...
#                     [--filer NAME]...
#
#   --binary PATH  the kelp binary to install (default: target/release/kelp)
#   --root DIR     install under DIR instead of / (a staging tree: no user is made, nothing
#                  is chowned, systemd is not told)
#   --master NAME  write /etc/kelp/master-NAME.toml for kelp-master@NAME (and likewise
#   --volume NAME  for volume servers and filers); repeat for several instances
#   --filer NAME
#
# Then edit the files (ports, peers, masters) and `systemctl enable --now kelp-master@NAME`.
# deploy/README.md walks through a whole cluster.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
binary=$here/../target/release/kelp
root=
masters=() volumes=() filers=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --master) masters+=("$2"); shift 2 ;;
    --volume) volumes+=("$2"); shift 2 ;;
    --filer) filers+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "install.sh: $*" >&2; exit 1; }
[[ -x $binary ]] || die "no kelp binary at $binary (cargo build --release, or --binary PATH)"
for name in "${masters[@]}" "${volumes[@]}" "${filers[@]}"; do
  [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "instance name '$name': letters, digits, . _ - only"
done

system=true
[[ -n $root ]] && system=false
if $system && [[ $(id -u) -ne 0 ]]; then
  die "run as root (or give --root DIR for a staging tree)"
fi

# The binary.
install -D -m 0755 "$binary" "$root/usr/local/bin/kelp"
kelp=$root/usr/local/bin/kelp

# The user: a system account without a shell or a home of its own.
if $system && ! id kelp >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/kelp --no-create-home \
    --shell /usr/sbin/nologin kelp
fi

# The directories: configuration readable by kelp (it holds keys), state owned by kelp.
install -d -m 0750 "$root/etc/kelp" "$root/var/lib/kelp"
if $system; then
  chown root:kelp "$root/etc/kelp"
  chown kelp:kelp "$root/var/lib/kelp"
fi

# The unit templates.
install -d -m 0755 "$root/etc/systemd/system"
for unit in kelp-master@.service kelp-volume@.service kelp-filer@.service; do
  install -m 0644 "$here/$unit" "$root/etc/systemd/system/$unit"
done

# `kelp scaffold --config ROLE` (with KEY set to VALUE, a TOML string, when KEY is given),
# into FILE unless it exists.
scaffold() {
  local role=$1 file=$2 key=$3 value=$4
  if [[ -e $file ]]; then
    echo "install.sh: keeping $file"
    return
  fi
  if [[ -n $key ]]; then
    "$kelp" scaffold --config "$role" | sed -E "s|^#? ?$key = .*|$key = \"$value\"|" >"$file.tmp"
  else
    "$kelp" scaffold --config "$role" >"$file.tmp"
  fi
  chmod 0640 "$file.tmp"
  $system && chown root:kelp "$file.tmp"
  mv "$file.tmp" "$file"
  echo "install.sh: wrote $file"
}

scaffold security "$root/etc/kelp/security.toml" "" ""
for name in "${masters[@]}"; do
  scaffold master "$root/etc/kelp/master-$name.toml" mdir "/var/lib/kelp/master-$name"
done
for name in "${volumes[@]}"; do
  scaffold volume "$root/etc/kelp/volume-$name.toml" dir "/var/lib/kelp/volume-$name"
done
for name in "${filers[@]}"; do
  scaffold filer "$root/etc/kelp/filer-$name.toml" dir "/var/lib/kelp/filer-$name"
done

if $system && [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
fi
echo "install.sh: done; edit /etc/kelp/*.toml, then systemctl enable --now kelp-master@NAME ..."
