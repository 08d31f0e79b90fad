#!/bin/sh
# Fuzzes each harness for $FUZZ_SECONDS (default 60) seconds, one after the
# other, and stops at the first crash.
#   run-fuzzers.sh CORPUS_DIR BUILD_DIR FUZZER...
#   run-fuzzers.sh --unavailable COMPILER
set -eu

if [ "$1" = "--unavailable" ]; then
	echo "fuzz: needs clang with libFuzzer (this build uses $2):" >&2
	echo "  CC=clang meson setup build-fuzz && meson compile -C build-fuzz fuzz" >&2
	exit 1
fi

corpus=$1
out=$2
shift 2
seconds=${FUZZ_SECONDS:-60}
mkdir -p "$out/artifacts"

for fuzzer in "$@"; do
	name=$(basename "$fuzzer")
	harness=${name#fuzz_}
	work="$out/work/$harness"
	mkdir -p "$work"
	echo "fuzz: $harness for ${seconds}s (new inputs in $work)" >&2
	dict=
	if [ -f "$corpus/../$harness.dict" ]; then
		dict="-dict=$corpus/../$harness.dict"
	fi
	# New inputs go to the first directory; the seed corpus is only read.
	"$fuzzer" -max_total_time="$seconds" -print_final_stats=1 $dict \
		-artifact_prefix="$out/artifacts/$harness-" "$work" "$corpus/$harness"
done
