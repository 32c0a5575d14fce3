#!/usr/bin/env python3
"""Totals of a meson test run, counted in test cases rather than in meson
tests: each meson test here runs a whole Catch2 or pytest suite, so the
summary line each runner prints is read from the output meson captured.

usage: count_tests.py BUILDDIR   → prints "PASSED FAILED SKIPPED"
"""
import json
import re
import sys

CATCH_ALL_PASSED = re.compile(r"All tests passed \(\d+ assertions? in (\d+) test cases?\)")
CATCH_SOME_FAILED = re.compile(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
PYTEST_SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s", re.MULTILINE)

passed = failed = skipped = 0
with open(f"{sys.argv[1]}/meson-logs/testlog.json") as log:
    for line in log:
        test = json.loads(line)
        output = test.get("stdout") or ""
        result = test["result"]
        if result == "SKIP":
            skipped += 1
            continue
        counted = False
        if m := CATCH_ALL_PASSED.search(output):
            passed += int(m.group(1))
            counted = True
        elif m := CATCH_SOME_FAILED.search(output):
            passed += int(m.group(2))
            failed += int(m.group(3))
            counted = True
        elif summaries := PYTEST_SUMMARY.findall(output):
            for count, word in re.findall(r"(\d+) (\w+)", summaries[-1]):
                if word == "passed":
                    passed += int(count)
                elif word in ("failed", "error", "errors"):
                    failed += int(count)
                elif word == "skipped":
                    skipped += int(count)
            counted = True
        # A crash, a timeout or a runner that printed no summary: the meson
        # test's own verdict is all there is.
        if not counted or (result != "OK" and failed == 0):
            if result == "OK":
                passed += 1
            else:
                failed += 1
print(passed, failed, skipped)
