#!/bin/sh
# Set up a Debian 12 machine for echod, build it, and run it or its tests.
#   tools/dev.sh run    install what is needed, build, run echod on 127.0.0.1:7007
#   tools/dev.sh test   install what is needed, build, run every test
# Run as root (it installs Debian packages), from the source tree.
set -eu

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

# What building and testing echod needs, all from Debian: the toolchain,
# libsystemd and Check; systemd's own tools for activation and unit
# checks; mandoc for the man pages; nspawn and debootstrap for the
# end-to-end suite; perf, iproute2 and gnuplot for the benchmark.
PACKAGES="gcc libc6-dev meson ninja-build pkg-config libsystemd-dev check
python3 systemd mandoc netcat-openbsd iproute2 util-linux procps
systemd-container debootstrap debian-archive-keyring gpgv ca-certificates
linux-perf gnuplot-nox strace groff-base man-db flake8"

install_packages() {
	missing=
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "dev.sh: missing packages:$missing; run as root to install them" >&2
		exit 1
	fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
}

build() {
	[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --werror "$@"
	meson compile -C "$BUILD"
}

case "${1:-}" in
run)
	install_packages
	build
	echo "echod on 127.0.0.1:7007; try: nc 127.0.0.1 7007   (Ctrl-C stops it)"
	exec "$BUILD/src/echod" -c conf/echod.conf -l 127.0.0.1:7007
	;;
test)
	install_packages
	build
	meson test -C "$BUILD" --print-errorlogs
	;;
*)
	echo "usage: tools/dev.sh run|test" >&2
	exit 2
	;;
esac
