"""The method comparison benchmark (issue: ESL vs SET, RigL, static, dense); writes into docs/.

    .venv/bin/python bench/compare.py            # the full sweep: 3 seeds x {0.2, 0.1, 0.05} x 4 methods + dense
    .venv/bin/python bench/compare.py --quick    # minutes

Same as `python -m esl_train.compare --out docs`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from esl_train.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--out", str(ROOT / "docs"), *sys.argv[1:]]))
