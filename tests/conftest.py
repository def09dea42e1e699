import shutil

import pytest

from esl_train.quiet import import_lava_dl

import_lava_dl()  # quietly, before any test module imports slayer


@pytest.fixture(scope="session")
def digits():
    """The embedded data set at 8 time steps (generated once, then cached)."""
    from esl_train.data import load_dataset

    return load_dataset("digits", steps=8)


@pytest.fixture(scope="session", autouse=True)
def _remove_tonic_caches_of_fake_data():
    """Every fake N-MNIST folder lives under a new tmp path, so each framing makes a new tonic cache in the user's
    cache folder: remove the ones this test run made (in-process or in subprocesses)."""
    from esl_train.data.digits_dvs import cache_dir

    before = set(cache_dir().glob("tonic-*"))
    yield
    for path in set(cache_dir().glob("tonic-*")) - before:
        shutil.rmtree(path, ignore_errors=True)
