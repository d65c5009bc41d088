#!/usr/bin/env bash
# test.sh — README command B: install what is missing, build the normal and
# the sanitizer configuration, run the whole suite. Exits non-zero when any
# test fails. The normal build runs every layer; the ASan+UBSan build runs
# the unit and simulation layers again (DESIGN.md, "Testing layers"). The
# clang libFuzzer build (build-fuzz, fuzz targets only) replays every seed
# corpus and fuzzes each target for 10 s (docs/security.md, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKEEL_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target keel_fuzz_targets

status=0
echo "== suite: normal build (all layers)"
(cd build && ctest --output-on-failure -j"$jobs") || status=1
echo "== suite: sanitizer build (unit, sim)"
(cd build-asan && ctest --output-on-failure -j"$jobs" -L 'unit|sim') || status=1
echo "== suite: fuzz targets (seed replay, 10 s each)"
(cd build-fuzz && ctest --output-on-failure -j"$jobs" -L fuzz) || status=1
exit $status
