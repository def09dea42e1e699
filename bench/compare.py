"""The method comparison benchmark (ESL vs SET, RigL, static, dense, paired seeds, 95 % CIs); writes into docs/.

    .venv/bin/python bench/compare.py            # seeds 0-2 x {0.2, 0.1, 0.05, 0.02, 0.01} x 4 methods + dense
    .venv/bin/python bench/compare.py --seeds 0,1,2,3,4   # add seeds: stored runs are reused
    .venv/bin/python bench/compare.py --quick    # minutes, on the small set

Same as `python -m esl_bench.compare --out docs`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from esl_bench.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--out", str(ROOT / "docs"), *sys.argv[1:]]))
