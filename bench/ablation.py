"""The ESL rule ablation (docs/tuning.md): the candidate rules of bench/esl_ablation.json against the static mask
and dense, on the benchmark set's *validation* split (settings are never chosen on the test split).

    .venv/bin/python bench/ablation.py [--seeds 0,1,2] [--densities 0.05] [--jobs 2]

Same as `python -m esl_bench.compare --name ablation --md tuning.md --split val ...`; finished runs are stored in
docs/compare_runs/ and shared with the comparison."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from esl_bench.compare import main  # noqa: E402

if __name__ == "__main__":
    variants = (ROOT / "bench" / "esl_ablation.json").read_text()
    sys.exit(main(["--out", str(ROOT / "docs"), "--name", "ablation", "--md", "tuning.md", "--split", "val",
                   "--title", "ESL rule ablation (validation split)", "--methods", "static", "--densities", "0.05",
                   "--seeds", "0,1,2", "--variants", variants, *sys.argv[1:]]))
