"""A Lava sink that writes the spikes it receives straight into a memory-mapped file.

Lava's RingBuffer sink hands its buffer back through `Var.get()`, which the runtime transfers one element per
message: reading the rasters of the whole embedded test split that way took longer than simulating it. This
process writes each time step into an `.npy` file the main process created, and the main process reads the file
after the run: the same spikes, no transfer."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class FileSink(AbstractProcess):
    """Records `a_in` (any shape) at every time step into `path`, an .npy file of bools (steps, *shape)."""

    def __init__(self, shape: tuple[int, ...], path: str, steps: int) -> None:
        np.lib.format.open_memmap(path, mode="w+", dtype=bool, shape=(steps, *shape)).flush()
        super().__init__(shape=shape, path=path, steps=steps)
        self.a_in = InPort(shape=shape)


@implements(proc=FileSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyFileSinkModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.raster = np.load(proc_params["path"], mmap_mode="r+")

    def run_spk(self) -> None:
        self.raster[self.time_step - 1] = self.a_in.recv() > 0
