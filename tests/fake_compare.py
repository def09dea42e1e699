"""`python -m tests.fake_compare TRAINED_DIR ARGS...`: esl_bench.compare with its training replaced by a finished run's
record, one file in TRAINED_DIR per training, so that tests of the harness (shards, damaged stores) take seconds.
Run as its own process: compare forks its pool workers, which a test process full of threads should not do."""

import os
import signal
import sys
import time
import uuid
from pathlib import Path

from esl_bench import compare
from esl_train import data, quiet


def fake(job):
    (TRAINED / f"{job['key']}.{uuid.uuid4().hex}").touch()
    if os.environ.get("FAKE_SLOW", job["label"]) == job["label"]:  # a training that takes time, for signal tests
        time.sleep(float(os.environ.get("FAKE_TRAIN_SECONDS", "0")))
    if os.environ.get("FAKE_KILLED") == job["label"]:  # the system kills the worker (out of memory)
        os.kill(os.getpid(), signal.SIGKILL)
    cfg = job["config"]
    return {"key": job["key"], "label": job["label"], "method": cfg["method"], "density": cfg["density"],
            "seed": cfg["seed"], "test_accuracy": 0.5, "explored": 1.0, "turnover_per_update": 0.0, "synops": 10,
            "file_bytes": 5, "file_density": 1.0, "wall_seconds": 1.0, "evolver_share": 0.0, "test_samples": 360,
            "history": [{"epoch": 1, "test_accuracy": 0.5, "explored": {"layer1": 1.0}}]}


if __name__ == "__main__":
    TRAINED = Path(sys.argv[1])
    TRAINED.mkdir(exist_ok=True)
    compare._train_and_measure = fake
    quiet.import_lava_dl = lambda: None  # nothing here needs Lava or the data (seconds per call saved)
    data.load_dataset = lambda *args, **kwargs: None
    sys.exit(compare.main(sys.argv[2:]))
