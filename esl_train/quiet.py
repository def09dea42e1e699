"""lava-dl prints warnings about optional dependencies (Prophesee toolbox, CUDA) when imported; they do
not apply to this project, so its first import is made quietly."""

import contextlib
import io


def import_lava_dl():
    """Import lava.lib.dl (slayer and netx) without its start-up chatter; returns the package."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import lava.lib.dl.netx
        import lava.lib.dl.slayer  # noqa: F401
    return lava.lib.dl
