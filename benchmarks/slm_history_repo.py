"""The history benchmark's repository: a flat Python project whose every command prints a lot.

Forty ledger modules (each about 80 lines, and a report of 13 lines when run), one unittest file of
ten tests each beside it (`python -m pytest -v` prints 400 lines), a README that lists them, and one
bug (a rate taken off by multiplying) that fails one test. `ls`, `cat`, `grep`, `python`, `pytest`:
whatever the model runs, it reads output of the size real repositories give, so that a history that
keeps every observation whole fills a 4,096-token context in a few steps.
"""

from __future__ import annotations

NAMES = [
    "accounts",
    "assets",
    "billing",
    "budget",
    "cashflow",
    "checks",
    "credit",
    "debit",
    "deposits",
    "discounts",
    "expenses",
    "fees",
    "forecast",
    "grants",
    "invoices",
    "journal",
    "ledger",
    "loans",
    "margins",
    "orders",
    "payroll",
    "pensions",
    "prices",
    "profits",
    "receipts",
    "refunds",
    "rents",
    "reserves",
    "returns",
    "salaries",
    "savings",
    "shares",
    "stock",
    "suppliers",
    "taxes",
    "transfers",
    "travel",
    "utilities",
    "vendors",
    "wages",
]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
BUGGY = "refunds"
FUNCTIONS = [  # name, body, docstring
    ("total", "return round(sum(values), 2)", "The sum of the amounts, to the cent."),
    ("mean", "return round(sum(values) / len(values), 2) if values else 0.0", "The average amount."),
    ("largest", "return max(values) if values else 0.0", "The largest amount."),
    ("smallest", "return min(values) if values else 0.0", "The smallest amount."),
    ("with_rate", "return [round(v * (1 + RATE), 2) for v in values]", "Each amount with the rate added."),
    ("without_rate", "return [round(v / (1 + RATE), 2) for v in values]", "Each amount, rate taken off."),
    ("above", "return [v for v in values if v > limit]", "The amounts above a limit."),
    ("below", "return [v for v in values if v < limit]", "The amounts below a limit."),
    (
        "running",
        "out, acc = [], 0.0\n    for v in values:\n        acc = round(acc + v, 2)\n        out.append(acc)\n    return out",
        "The running totals.",
    ),
    ("spread", "return round(max(values) - min(values), 2) if values else 0.0", "Largest minus smallest."),
]


def module_source(name: str, i: int) -> str:
    functions = []
    for fn, body, doc in FUNCTIONS:
        if name == BUGGY and fn == "without_rate":
            body = body.replace("v / (1 + RATE)", "v * (1 - RATE)")
        args = "values, limit" if fn in ("above", "below") else "values"
        functions.append(f'def {fn}_{name}({args}):\n    """{doc}"""\n    {body}\n')
    head = f'"""The {name} ledger: totals, rates and a monthly report of the {name} accounts."""\n\n'
    head += f"RATE = {(i % 9 + 1) / 100}\nMONTHS = {MONTHS!r}\n\n\n"
    return (
        head
        + "\n\n".join(functions)
        + f'''

def sample_{name}():
    """Twelve months of amounts, the same on every run."""
    return [round(100 + (m * {i + 7}) % 53 + m * 1.25, 2) for m in range(12)]


def report_{name}():
    """One line per month of the sample amounts, and a line of totals."""
    values = sample_{name}()
    lines = []
    for month, value, run in zip(MONTHS, values, running_{name}(values)):
        taxed = with_rate_{name}([value])[0]
        lines.append(f"{name:10s} {{month}}  amount {{value:8.2f}}  with rate {{taxed:8.2f}}  running {{run:9.2f}}")
    lines.append(f"{name:10s} total {{total_{name}(values):.2f}} mean {{mean_{name}(values):.2f}}")
    return "\\n".join(lines)


if __name__ == "__main__":
    print(report_{name}())
'''
    )


def test_source(name: str) -> str:
    return f'''"""Tests of the {name} ledger."""

import unittest

from {name} import *  # noqa: F403


class Test{name.title()}(unittest.TestCase):
    def test_total(self):
        self.assertEqual(total_{name}([1.5, 2.25, 3]), 6.75)

    def test_mean(self):
        self.assertEqual(mean_{name}([2, 4, 6]), 4.0)

    def test_mean_of_nothing(self):
        self.assertEqual(mean_{name}([]), 0.0)

    def test_largest(self):
        self.assertEqual(largest_{name}([3, 9, 1]), 9)

    def test_smallest(self):
        self.assertEqual(smallest_{name}([3, 9, 1]), 1)

    def test_rate_round_trip(self):
        self.assertEqual(without_rate_{name}(with_rate_{name}([100.0])), [100.0])

    def test_above_and_below(self):
        self.assertEqual(above_{name}([1, 5, 9], 4) + below_{name}([1, 5, 9], 4), [5, 9, 1])

    def test_running(self):
        self.assertEqual(running_{name}([1, 2, 3.5]), [1, 3, 6.5])

    def test_spread(self):
        self.assertEqual(spread_{name}([4, 10, 7]), 6)

    def test_report_has_every_month(self):
        self.assertEqual(len(report_{name}().splitlines()), 13)


if __name__ == "__main__":
    unittest.main()
'''


def repo_files() -> dict[str, str]:
    """Path -> text of every file of the repository."""
    files = {"README.md": "# Ledgers\n\nOne module per ledger, each with its tests:\n\n"}
    for i, name in enumerate(NAMES):
        files["README.md"] += (
            f"- `{name}.py`: totals, rates and the monthly report of {name} (`test_{name}.py`)\n"
        )
        files[f"{name}.py"] = module_source(name, i)
        files[f"test_{name}.py"] = test_source(name)
    return files
