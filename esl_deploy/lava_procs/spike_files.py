"""Spikes into and out of Lava through memory-mapped .npy files, one row per time step.

Lava's RingBuffer source holds its data as (*shape, steps), so every step sends a strided column (on 64 tiled
copies of the default MLP: 1.2 ms a step, against 0.04 ms for a contiguous row), and it copies the whole array into
its worker. Lava's RingBuffer sink hands its buffer back through `Var.get()`, which the runtime transfers one element
per message: reading the rasters of the whole embedded test split that way took longer than simulating it. These
processes read and write rows of files the main process created: the same spikes, no transfer."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class FileSource(AbstractProcess):
    """Sends row t - 1 of `path`, an .npy file of bools (steps, *shape), at time step t."""

    def __init__(self, path: str) -> None:
        shape = np.load(path, mmap_mode="r").shape[1:]
        super().__init__(path=path)
        self.s_out = OutPort(shape=shape)


@implements(proc=FileSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyFileSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.spikes = np.load(proc_params["path"], mmap_mode="r")

    def run_spk(self) -> None:
        self.s_out.send(self.spikes[(self.time_step - 1) % len(self.spikes)])


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
