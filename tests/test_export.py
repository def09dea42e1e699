"""model.net: the netx layout, only the surviving synapses, a size that shrinks with density."""

import h5py
import numpy as np
import pytest

from esl_train.export import export_netx, read_synapses

from .helpers import masked_net


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_file_holds_exactly_the_masked_synapses(tmp_path, arch):
    net, ev = masked_net(arch, 0.1)
    path = tmp_path / "model.net"
    export_netx(net, path)
    with h5py.File(path) as f:
        for name, block in net.weighted_blocks().items():
            w = f["layer"][name.removeprefix("layer")]["weight"][()]
            mask = ev.masks[name].reshape(w.shape).numpy()
            quantized = block.synapse.pre_hook_fx(block.synapse.weight, descale=True).detach().reshape(w.shape)
            assert np.array_equal(w != 0, mask & (quantized.numpy() != 0))  # survivors = mask minus zero-quantized
            assert np.array_equal(w, quantized.numpy() * mask)
    counts = {l["name"]: l["synapses"] for l in read_synapses(path)}
    active = ev.active()
    assert all(0 < counts[k] <= active[k] for k in active)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_netx_builds_the_exported_network(tmp_path, arch):
    from lava.lib.dl import netx
    net, _ = masked_net(arch, 0.2)
    export_netx(net, tmp_path / "model.net", {"arch": arch})
    lava_net = netx.hdf5.Network(net_config=str(tmp_path / "model.net"))
    assert lava_net.inp.shape == ((1152,) if arch == "mlp" else (24, 24, 2))
    assert lava_net.out.shape == (10,)
    assert len(lava_net) == len(net.weighted_blocks())


def test_file_size_shrinks_with_density(tmp_path):
    sizes = {}
    for d in (1.0, 0.2, 0.1, 0.05):
        net, _ = masked_net("mlp", d)
        export_netx(net, tmp_path / f"{d}.net")
        sizes[d] = (tmp_path / f"{d}.net").stat().st_size
    export_netx(masked_net("mlp", 1.0)[0], tmp_path / "plain.net", compress=False)  # lava-dl's own layout
    assert sizes[1.0] > sizes[0.2] > sizes[0.1] > sizes[0.05], sizes
    assert sizes[0.1] <= 0.15 * (tmp_path / "plain.net").stat().st_size


def test_export_is_atomic(tmp_path, monkeypatch):
    net, _ = masked_net("mlp", 0.1, hidden=8)
    path = tmp_path / "model.net"
    path.write_bytes(b"old")

    def broken(self, handle):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(net.blocks[1]), "export_hdf5", broken)
    with pytest.raises(RuntimeError):
        export_netx(net, path)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.net"]
