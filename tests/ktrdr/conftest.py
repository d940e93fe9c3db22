"""tests/ktrdr: our strategy verdicts against the real ktrdr (`make test-ktrdr`, not part of `make test`).

Environment:
  KTRDR_SRC      a ktrdr checkout (its strategies/*.yaml are compared, its StrategyValidator is run)
  KTRDR_API_URL  a running real ktrdr backend (with or without /api/v1); its validate endpoint is asked
  KTRDR_PYTHON   the Python that imports ktrdr (default: this one); it needs pydantic, pydantic-settings,
                 pyyaml, python-dotenv, pandas and httpx, e.g. a throwaway venv outside .venv

The comparison tables are printed at the end of the run.
"""

import os
import runpy
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The same import set-up as the unit tests: the checkout importable as ansible_collections.ktrdr.ops.
runpy.run_path(os.path.join(ROOT, "tests", "unit", "conftest.py"))
sys.path.insert(0, os.path.dirname(__file__))

TABLES = {}  # title -> [(name, ours, theirs, agree, reason)]


def pytest_terminal_summary(terminalreporter):
    for title, rows in TABLES.items():
        agree = sum(1 for row in rows if row[3])
        terminalreporter.write_sep("=", "%s: %d/%d agree" % (title, agree, len(rows)))
        width = max([len(r[0]) for r in rows] + [8])
        terminalreporter.write_line("%-*s  %-8s %-8s %s" % (width, "strategy", "ours", "ktrdr", "reason"))
        for name, ours, theirs, same, reason in rows:
            terminalreporter.write_line("%-*s  %-8s %-8s %s%s" % (width, name, ours, theirs, "" if same else "DISAGREE: ", reason))
