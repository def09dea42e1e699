import contextlib
import io

import pytest

# lava-dl prints optional-dependency warnings on import; keep test output readable
with contextlib.redirect_stdout(io.StringIO()):
    import lava.lib.dl.slayer  # noqa: F401


@pytest.fixture(scope="session")
def digits():
    """The embedded data set at 8 time steps (generated once, then cached)."""
    from esl_train.data import load_dataset

    return load_dataset("digits", steps=8)
