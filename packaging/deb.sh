#!/usr/bin/env bash
# Builds the Debian package from a staged tree with dpkg-deb (no cargo-deb: installing it
# compiles for minutes, and the tree is simple).
#   packaging/deb.sh [release|debug]     -> target/debian/logrelay_VERSION_ARCH.deb
# `release` (the default) builds the binaries; `debug` packages the ones `cargo test`
# already built (CI checks the package that way without a second build).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
case "$profile" in
  release) cargo build --release --locked --bin logrelayd --bin logq ;;
  debug) cargo build --locked --bin logrelayd --bin logq ;;
  *) echo "usage: $0 [release|debug]" >&2; exit 2 ;;
esac
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage=target/debian/stage
rm -rf "$stage" && mkdir -p "$stage/DEBIAN"

put() { # put MODE SOURCE DEST
  install -D -m "$1" "$2" "$stage$3"
}
# Stripped: the debug info (kept in the release profile for profiling) is most of the size.
put 0755 "target/$profile/logrelayd" /usr/bin/logrelayd
put 0755 "target/$profile/logq" /usr/bin/logq
strip "$stage/usr/bin/logrelayd" "$stage/usr/bin/logq"
put 0644 systemd/logrelayd.service /usr/lib/systemd/system/logrelayd.service
put 0644 systemd/logrelayd.socket /usr/lib/systemd/system/logrelayd.socket
put 0644 systemd/logrelay.sysusers /usr/lib/sysusers.d/logrelay.conf
put 0644 systemd/logrelay.tmpfiles /usr/lib/tmpfiles.d/logrelay.conf
for page in man/*.[158]; do
  name=$(basename "$page")
  put 0644 "$page" "/usr/share/man/man${name##*.}/$name"
  gzip -9n "$stage/usr/share/man/man${name##*.}/$name"
done
for prog in logrelayd logq; do
  put 0644 "completions/$prog.bash" "/usr/share/bash-completion/completions/$prog"
  put 0644 "completions/_$prog" "/usr/share/zsh/vendor-completions/_$prog"
  put 0644 "completions/$prog.fish" "/usr/share/fish/vendor_completions.d/$prog.fish"
done
# The service's settings: the commented example, storing under /var/lib/logrelay.
mkdir -p "$stage/etc/logrelay"
sed 's|^# db = "sqlite:/var/lib/logrelay/logs.db"|db = "sqlite:/var/lib/logrelay/logs.db"|' \
  fixtures/logrelayd.toml > "$stage/etc/logrelay/logrelayd.toml"
grep -q '^db = "sqlite:/var/lib/logrelay/logs.db"' "$stage/etc/logrelay/logrelayd.toml"
put 0644 README.md /usr/share/doc/logrelay/README.md
put 0644 packaging/debian/copyright /usr/share/doc/logrelay/copyright

for script in postinst prerm postrm; do
  put 0755 "packaging/debian/$script" "/DEBIAN/$script"
done
echo /etc/logrelay/logrelayd.toml > "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  packaging/debian/control > "$stage/DEBIAN/control"

out="target/debian/logrelay_${version}_${arch}.deb"
# xz for release; a debug package is only for a test install and is compressed fast.
level=9
[ "$profile" = debug ] && level=1
dpkg-deb --root-owner-group -Zxz -z"$level" --build "$stage" "$out" >/dev/null
echo "$out"
