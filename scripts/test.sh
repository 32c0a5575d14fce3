#!/usr/bin/env bash
# The README's second command: install what is missing, build, and run every
# test (unit, reactor under both backends, integration against the real
# binary under both backends), then all of it again in an ASan+UBSan build,
# the worker pool's tests under ThreadSanitizer, and a release build compiled
# (not run). Every build treats warnings as errors (scripts/configure.sh).
# Prints the totals last: "N passed, M failed, K skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1

passed=0 failed=0 skipped=0
count_results() {  # adds the test cases of one build's run to the totals
  local p f s
  read -r p f s < <(/usr/bin/python3 scripts/count_tests.py "$1") || { failed=$((failed + 1)); return; }
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

# skip_tests: meson test names a suite's run leaves out (set per call).
skip_tests=()
# after_build: a command run_suite starts once its build is done, before its
# tests (set per call).
after_build=()
run_suite() {  # builddir, meson setup options...
  local builddir=$1
  shift
  echo "== $builddir: build"
  if ! scripts/build.sh "$builddir" "$@"; then
    echo "== $builddir: BUILD FAILED"
    failed=$((failed + 1))
    return
  fi
  [ ${#after_build[@]} -eq 0 ] || "${after_build[@]}"
  echo "== $builddir: test"
  local tests=()
  if [ ${#skip_tests[@]} -gt 0 ]; then
    mapfile -t tests < <(meson test -C "$builddir" --list --no-rebuild 2>/dev/null | grep " / " | sed 's|.* / ||' | grep -vxF "${skip_tests[@]/#/-e}")
  fi
  meson test -C "$builddir" --print-errorlogs --num-processes 1 "${tests[@]}"
  count_results "$builddir"
}

# unity: the libraries, the daemon and framectl are compiled eight sources
# to a translation unit (the tests one file each: their fixtures share
# names). It makes these two builds about 2.5 times cheaper; the release
# build below stays one file per unit, as packagers build it, so a source
# that does not compile on its own is still caught.
unity=(-Dunity=on -Dunity_size=8)

# What users and packagers build: -O3 inlines more, and g++ warns about what
# it then sees (a -Wrestrict false positive once broke it). Compiled only,
# and without the tests (the plain build compiles those with warnings as
# errors): the daemon, framectl and the load generator. It is compiled at
# the lowest priority while the plain build's tests run, which spend most
# of their time waiting on sockets, timers and child processes; its result
# is read at the end, and a failure counts like any other build's.
release_log=$(mktemp)
start_release_build() {
  echo "== build-release: build (in the background, log at the end)"
  nice -n 19 scripts/build.sh build-release --buildtype=release -Dtests=false >"$release_log" 2>&1 &
  release_pid=$!
}
release_pid=
after_build=(start_release_build)
skip_tests=(reactors-threads)  # for build-tsan; integration-reactors covers these files here
run_suite build -Dtests=true "${unity[@]}"
after_build=()
if [ -z "$release_pid" ]; then start_release_build; fi  # the plain build failed: build it anyway
# b_lundef=false: the sanitizer runtimes resolve symbols at load time.
# quarantine_size_mb: ASan keeps freed memory in quarantine (256 MiB by
# default), which would swamp the tests that bound the daemon's memory.
# The integration suite runs under one backend here (both run in build/):
# the sanitizers look at the daemon's own code, which both backends share.
skip_tests=(integration-epoll reactors-threads)
ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_summary=1:detect_leaks=1:quarantine_size_mb=16 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -Dtests=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug "${unity[@]}"
skip_tests=()

# Under ThreadSanitizer (TSan and ASan cannot share a build): the worker
# pool's and the command runner's unit tests (tests/unit/exec_tests), and the
# daemon with two reactors in the integration tests where their threads meet
# (the "threads" suite: several reactors, pub/sub, stats, reload).
echo "== build-tsan: build"
if scripts/configure.sh build-tsan -Dtests=true -Db_sanitize=thread "${unity[@]}" &&
   ninja -C build-tsan tests/unit/exec_tests daemon/framed framectl/framectl bench/framed-bench; then
  echo "== build-tsan: test"
  TSAN_OPTIONS=halt_on_error=1:abort_on_error=1 \
    meson test -C build-tsan --no-rebuild --suite exec --suite threads --print-errorlogs
  count_results build-tsan
else
  echo "== build-tsan: BUILD FAILED"
  failed=$((failed + 1))
fi

# The parsers under libFuzzer (clang's), ASan and UBSan: every framing, the
# HTTP request parser, framed.toml and file names, each for fuzz_seconds
# from its seeds (tests/fuzz). Only the fuzz targets are built there.
echo "== build-fuzz: build"
if CC=clang CXX=clang++ scripts/configure.sh build-fuzz -Dfuzz=true -Dtests=false -Dfuzz_seconds=15 \
     -Db_sanitize=address,undefined -Db_lundef=false "${unity[@]}" &&
   ninja -C build-fuzz fuzzers; then
  echo "== build-fuzz: test"
  meson test -C build-fuzz --no-rebuild --suite fuzz --print-errorlogs
  count_results build-fuzz
else
  echo "== build-fuzz: BUILD FAILED"
  failed=$((failed + 1))
fi

if wait "$release_pid"; then
  echo "== build-release: built"
  tail -n 3 "$release_log"
else
  cat "$release_log"
  echo "== build-release: BUILD FAILED"
  failed=$((failed + 1))
fi
rm -f "$release_log"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
