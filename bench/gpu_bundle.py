"""Build .gpu_bundle/: the pure-Python sources bench/gpu_check.py needs on a GPU machine that reaches no registry.

    .venv/bin/python bench/gpu_bundle.py        # about 3 MB; then carry ".gpu_bundle" with the device call

The borrowed machine has its own Python 3.12 and torch (and numpy, scipy, h5py, matplotlib, networkx, tqdm), but
not lava-nc, lava-dl, nir or asteval. Their sources are copied from our venv, without lava-dl's trained YOLO
weights (the Trained_* folders under slayer/object_detection/models, 51 MB): `import lava.lib.dl.slayer` imports
the model code there (slayer/__init__ imports object_detection) but never reads the weights."""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / ".gpu_bundle"
PACKAGES = ["lava", "nir", "asteval"]  # tonic is left out: the check uses the embedded data only
LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.pyc", "Trained_*", "tests")


def main() -> int:
    import site

    sources = Path(site.getsitepackages()[0])
    if BUNDLE.exists():
        shutil.rmtree(BUNDLE)
    BUNDLE.mkdir()
    for name in PACKAGES:
        shutil.copytree(sources / name, BUNDLE / name, ignore=LEFT_OUT)
    size = sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file())
    print(f"{BUNDLE}: {', '.join(PACKAGES)} from {sources}, {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
