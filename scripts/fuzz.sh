#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (libFuzzer, coverage-guided) for SECONDS each
# (default 60) and prints, per target, the executions and whether it crashed.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET…]
#
# Builds on the stable toolchain: coverage comes from LLVM's sanitizer-coverage pass
# (-Cpasses=sancov-module), which stable rustc accepts; no sanitizer (those need
# nightly), so a crash is a panic, an abort, a hang (-timeout) or running out of
# memory (-rss_limit_mb). The flags apply to the targets only (--target), not to
# build scripts. Seeds are in fuzz/corpus/TARGET (committed); what a run finds is
# kept in a temp corpus, and a crash's input goes to fuzz/artifacts/TARGET/ to be
# turned into a regression test. Exit 1 when any target crashed.
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

# libFuzzer is C++: the build needs a C++ compiler and its standard library.
if ! printf '#include <vector>\nint main(){std::vector<int> v{1};return v[0]-1;}\n' \
  | c++ -x c++ - -o /tmp/strata-fuzz-cxx-check 2>/dev/null; then
  echo "fuzz: libFuzzer needs a C++ compiler (c++ with libstdc++): apt-get install -y g++" >&2
  exit 1
fi
rm -f /tmp/strata-fuzz-cxx-check

host="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
echo "fuzz: building the targets (release, instrumented, $host)"
cargo build --release --locked --target "$host" -q

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^strata-fuzz$')
fi

failed=0
printf '%-16s %12s  %s\n' TARGET EXECUTIONS RESULT
for t in "${targets[@]}"; do
  work="$(mktemp -d)"
  mkdir -p "artifacts/$t"
  log="$work/log"
  status=0
  "target/$host/release/$t" "$work" "corpus/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  if [ "$status" -eq 0 ]; then
    result="ok"
  else
    result="CRASH (exit $status): $(grep -m1 -E 'panicked|ERROR|Timeout|out-of-memory' "$log" || echo see log)"
    failed=1
    tail -30 "$log" >&2
  fi
  printf '%-16s %12s  %s\n' "$t" "${runs:-?}" "$result"
  rm -rf "$work"
done
exit "$failed"
