#!/bin/sh
# Set up a Debian 12 machine for echod, build it, and run it, test it or
# package it.
#   tools/dev.sh run    install what building needs, build, run echod on 127.0.0.1:7007
#   tools/dev.sh test   install what testing needs too, build, run every test
#   tools/dev.sh deb [DIR]
#                       build the Debian package in a copy of the tree, check
#                       it with lintian; the .deb lands in DIR (default build-deb)
# Run as root (it installs Debian packages), from the source tree.
set -eu

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

# Building and running echod: the toolchain, libsystemd, and Check and
# Python, which the default configuration (tests on) asks for.
BUILD_PACKAGES="gcc libc6-dev meson ninja-build pkg-config libsystemd-dev
check python3"

# Testing it as well: systemd's own tools for activation and unit
# checks; mandoc and man-db for the man pages; nspawn and debootstrap for
# the end-to-end suite; perf, iproute2 and gnuplot for the benchmark;
# clang for CI's second compiler, gcovr for tools/coverage.
TEST_PACKAGES="$BUILD_PACKAGES systemd mandoc netcat-openbsd iproute2
util-linux procps systemd-container debootstrap debian-archive-keyring gpgv
ca-certificates linux-perf gnuplot-nox strace groff-base man-db haproxy
prometheus clang flake8 gcovr"

# Packaging it: dpkg-buildpackage and lintian; the Build-Depends of
# debian/control come on top (apt-get build-dep).
DEB_PACKAGES="build-essential dpkg-dev debhelper lintian"

install_packages() {
	missing=
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	need_root "missing packages:$missing"
	apt_updated
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
}

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "dev.sh: $1; run as root to install them" >&2
		exit 1
	fi
}

APT_UPDATED=
apt_updated() {
	[ -n "$APT_UPDATED" ] || apt-get update
	APT_UPDATED=1
}

build() {
	[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --werror "$@"
	meson compile -C "$BUILD"
}

# The package is built in a copy: dpkg-buildpackage writes into the tree
# (obj-*, debian/echod, debian/.debhelper) and its results into the
# parent directory, and neither is ours to litter.
deb() {
	out=${1:-build-deb}
	install_packages $DEB_PACKAGES
	if ! dpkg-checkbuilddeps 2>/dev/null; then
		need_root "Build-Depends missing: $(dpkg-checkbuilddeps 2>&1 | sed 's/.*: //')"
		apt_updated
		DEBIAN_FRONTEND=noninteractive apt-get build-dep -y --no-install-recommends ./
	fi
	version=$(dpkg-parsechangelog -S Version)
	work=$(mktemp -d "${TMPDIR:-/tmp}/echod-deb.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	mkdir "$work/echod-${version%-*}"
	# Everything but builds and git's own files.
	tar -c --exclude='./build*' --exclude='./.git' --exclude='./obj-*' . |
		tar -x -C "$work/echod-${version%-*}"
	(cd "$work/echod-${version%-*}" && dpkg-buildpackage -us -uc -b)
	mkdir -p "$out"
	rm -f "$out"/echod_* "$out"/echod-dbgsym_*
	cp "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
	rm -rf "$work"
	trap - EXIT
	# Errors and warnings fail; an override in debian/ says why it is one.
	lintian --fail-on error,warning --display-info "$out"/echod_*.changes
	ls "$out"/echod_*.deb
}

case "${1:-}" in
run)
	install_packages $BUILD_PACKAGES
	build
	echo "echod on 127.0.0.1:7007; try: nc 127.0.0.1 7007   (Ctrl-C stops it)"
	exec "$BUILD/src/echod" -c conf/echod.conf -l 127.0.0.1:7007
	;;
test)
	install_packages $TEST_PACKAGES
	build
	meson test -C "$BUILD" --print-errorlogs
	;;
deb)
	deb "${2:-}"
	;;
*)
	echo "usage: tools/dev.sh run|test|deb [DIR]" >&2
	exit 2
	;;
esac
