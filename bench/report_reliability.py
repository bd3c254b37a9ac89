"""Print the reliability figures the integration suites recorded.

    .venv/bin/python bench/report_reliability.py          # summarise the last runs
    .venv/bin/python bench/report_reliability.py --run    # run the suites first (stack up)

The suites (tests/integration/test_faults.py, test_bad_inputs.py, test_soak.py,
test_security.py) append one JSON line per observation to .cache/reliability/report.jsonl
(or $VIDLOC_RELIABILITY_REPORT). The summary shows: faults injected and survived, bad inputs
tried and refused with their codes, messages in and results out, and duplicates seen.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REPORT = Path(
    os.environ.get("VIDLOC_RELIABILITY_REPORT") or REPO / ".cache" / "reliability" / "report.jsonl"
)
SUITES = ["test_faults.py", "test_bad_inputs.py", "test_soak.py", "test_security.py"]


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def latest_per_case(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        latest[(row["suite"], row["case"])] = row  # later lines win: the most recent run
    return latest


def summarise(rows: list[dict[str, Any]]) -> str:
    latest = latest_per_case(rows)
    by_suite: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (suite, _), row in sorted(latest.items()):
        by_suite[suite].append(row)
    out: list[str] = []

    faults = by_suite.get("faults", [])
    survived = sum(1 for r in faults if r.get("survived"))
    out.append(f"faults injected: {len(faults)}, survived: {survived}")
    for r in faults:
        details = {k: v for k, v in r.items() if k not in ("suite", "case", "at", "survived")}
        out.append(f"  {'ok  ' if r.get('survived') else 'FAIL'} {r['case']} {details or ''}")

    bad = by_suite.get("bad_inputs", [])
    cases = [r for r in bad if "expected" in r]
    refused = [r for r in cases if r["got"] and all(g[1] == r["expected"] for g in r["got"])]
    accepted = [r for r in cases if r["got"] and all(g[0] == r["expected"] for g in r["got"])]
    out.append(
        f"bad inputs tried: {len(cases)}, refused with the expected code: "
        f"{len(refused)}, accepted as expected (valid but odd): {len(accepted)}"
    )
    for r in cases:
        got = sorted({g[1] or g[0] for g in r["got"]})
        out.append(f"  {r['case']:<24} -> {', '.join(got)} (x{len(r['got'])})")
    answers = by_suite.get("bad_model_answers", [])
    if answers:
        ok = sum(1 for r in answers if r["got"] == "succeeded")
        out.append(
            f"bad model answers survived: {ok}/{len(answers)} "
            f"({', '.join(r['case'] for r in answers)})"
        )

    for r in by_suite.get("soak", []):
        out.append(
            f"soak: messages in {r['messages_in']}, results out {r['results_out']}, "
            f"conflicting duplicates {r['conflicting_duplicates']}, identical replays "
            f"{r['identical_replays']}, failed {r['failed']}, workers killed "
            f"{r['workers_killed']}, model faults applied {r['faults_applied']}, "
            f"{r['seconds']} s"
        )
    for r in by_suite.get("security", []):
        out.append(
            f"security: grepped {r['texts']} logs/events/objects for {r['secrets']} "
            f"secrets, leaks: {r['leaks']}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the suites before summarising")
    args = parser.parse_args(argv)
    if args.run:
        tests = [str(REPO / "tests" / "integration" / s) for s in SUITES]
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", *tests], cwd=REPO)
        if rc != 0:
            print(f"pytest exited {rc}; the figures below include the failures", file=sys.stderr)
    rows = load(REPORT)
    if not rows:
        print(f"no observations in {REPORT}; run with --run (needs the local stack)")
        return 1
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
