import pytest

from esl_train.quiet import import_lava_dl

import_lava_dl()  # quietly, before any test module imports slayer


@pytest.fixture(scope="session")
def digits():
    """The embedded data set at 8 time steps (generated once, then cached)."""
    from esl_train.data import load_dataset

    return load_dataset("digits", steps=8)
