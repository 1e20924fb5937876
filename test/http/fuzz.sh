#!/usr/bin/env bash
# fuzz: libFuzzer (clang, with ASan and UBSan) over jobq-http's request parsing and routing:
# http/fuzz.c drives parse.c and json.c (request limits and framing, path splitting and
# percent-decoding, route matching, query parameters, JSON bodies, tokens file lines) for
# FUZZ_SECONDS (60) from the seed corpus in test/http/corpus/. Any crash, sanitizer report,
# timeout or broken invariant fails. New inputs go to a temporary directory, not the seeds.
source "$(dirname "$0")/../lib.sh"
make -s -C "$top/http" fuzz >/dev/null
work=$(mktemp -d /tmp/jobq-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
rc=0
"$top/http/jobq-http-fuzz" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=20000 -timeout=10 \
	-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/" \
	"$work/corpus" "$top/test/http/corpus" >"$work/log" 2>&1 || rc=$?
grep -E '^(INFO: seed|#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::peak_rss)' "$work/log" || true
if [ "$rc" -ne 0 ] || ls "$work"/crash-* "$work"/timeout-* "$work"/leak-* "$work"/oom-* >/dev/null 2>&1; then
	tail -60 "$work/log"
	for f in "$work"/crash-* "$work"/timeout-* "$work"/leak-* "$work"/oom-*; do
		[ -e "$f" ] && { echo "input $f:"; od -c "$f" | head -20; }
	done
	die "the fuzzer found a failure (exit $rc)"
fi
ok "no crash in ${FUZZ_SECONDS:-60} s: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/log" | grep -o '[0-9]*$') inputs"
