#!/usr/bin/env bash
# The Debian package, built with cargo-deb and installed for real with dpkg -i: the binary and the
# unit land, the unit verifies, the cobox user can run it in its home; then it is purged. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "deb-check: needs root (dpkg -i)" >&2
  exit 1
fi
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked --version 3.8.0
fi
cargo deb -p cobox
deb="$(ls -t target/debian/cobox_*.deb | head -n 1)"
dpkg -i "$deb"
unit=""
for d in /lib/systemd/system /usr/lib/systemd/system; do
  [ -f "$d/cobox.service" ] && unit="$d/cobox.service"
done
[ -n "$unit" ] || { echo "deb-check: no cobox.service installed" >&2; exit 1; }
test -x /usr/bin/cobox
/usr/bin/cobox --version
# systemd-analyze warns on stderr and still exits 0 for a bad key: silence is the check.
said="$(systemd-analyze verify "$unit" 2>&1)"
[ -z "$said" ] || { echo "deb-check: $unit does not verify: $said" >&2; exit 1; }
getent passwd cobox >/dev/null
[ "$(stat -c '%U %a' /var/lib/cobox)" = "cobox 700" ]
test -f /etc/default/cobox
runuser -u cobox -- env COBOX_HOME=/var/lib/cobox /usr/bin/cobox id
dpkg -P cobox
if [ -e /usr/bin/cobox ] || [ -e "$unit" ]; then
  echo "deb-check: purge left files behind" >&2
  exit 1
fi
rm -rf /var/lib/cobox
echo "deb-check: $(basename "$deb") installs, verifies, runs as cobox and purges"
