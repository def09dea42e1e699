"""The README and docs state what is true now: the README's numbers come from the stored runs, and no sentence dates a
result by a numbered round of work or by which machine ran faster."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATING = re.compile(
    r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|next|this|last|previous|earlier|later)"
    r" (tuning |work )?(round|session)s?\b|\brounds? [0-9]|\bwork session|machine about [0-9.]+ times"
    r"|than the one the|(earlier|previous|older|newer) machine|times faster than the (one|machine)", re.I)


def _texts():
    for pattern in ("README.md", "docs/*.md", "esl_train/**/*.py", "esl_deploy/**/*.py", "esl_bench/*.py",
                    "bench/*.py", "tests/*.py"):
        for path in ROOT.glob(pattern):
            if path.name != "test_docs.py":
                yield path


@pytest.mark.parametrize("path", list(_texts()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_result_is_dated_by_a_round_of_work_or_a_faster_machine(path):
    text = " ".join(path.read_text().split())  # a phrase may be broken across lines
    hits = [text[max(m.start() - 40, 0):m.end() + 40] for m in DATING.finditer(text)]
    assert not hits, hits


def test_the_dating_check_catches_the_usual_words():
    for line in ("declared in the sixth tuning round", "a machine about 2.5 times faster", "rounds 2-5",
                 "than the one the earlier rounds ran on", "in this session"):
        assert DATING.search(line), line
    assert not DATING.search("recordings of 12 sessions, round toward zero")


def test_the_readme_fits_on_a_screen_and_its_table_matches_the_stored_runs():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "readme_table.py"), "--check"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
