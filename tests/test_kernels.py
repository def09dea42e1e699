"""esl_train.kernels against lava-dl: the fused CUBA neuron (spikes and voltages bit-identical, gradients equal
within float tolerance, surrogate included), the spike-driven synapse against SLAYER's Conv3d, and the switch."""

import pytest
import torch

import lava.lib.dl.slayer as slayer
from lava.lib.dl.slayer.neuron.cuba import Neuron
from lava.lib.dl.slayer.utils import quantize

from esl_train.data.framing import BoolSpikes, collate
from esl_train.kernels import install
from esl_train.kernels.cuba import FusedNeuron, dynamics
from esl_train.kernels.synapse import BREAK_EVEN, SpikeDrivenDense
from esl_train.models import NEURON, build

PARAMS = [NEURON, {**NEURON, "threshold": 0.5, "current_decay": 0.9, "voltage_decay": 0.5},
          {**NEURON, "threshold": 3.0, "current_decay": 0.0, "voltage_decay": 0.001, "tau_grad": 0.5}]
SHAPES = [(3, 5, 16), (8, 64, 20), (2, 3, 6, 5, 9), (1, 1, 1)]


def pair(params):
    ref = Neuron(**params)
    fused = Neuron(**params)
    fused.__class__ = FusedNeuron
    return ref, fused


def inputs(shape, seed):
    """Synaptic inputs spanning sub-threshold, near-threshold (quantized to the state's grid) and large values."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=g) * torch.tensor([0.3, 1.5, 40.0])[torch.randint(0, 3, shape, generator=g)]
    grid = torch.round(torch.rand(shape, generator=g) * 4 * 4096) / 4096  # exactly on the fixed-point grid
    return torch.where(torch.rand(shape, generator=g) < 0.3, grid, z)


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_forward_is_bit_identical_to_lava_dl(params, shape):
    ref, fused = pair(params)
    for seed in range(3):
        z = inputs(shape, seed)
        spikes = fused(z)
        assert torch.equal(spikes, ref(z))
        _, voltage = ref.dynamics(z)
        _, ours = dynamics(z, int(quantize(ref.current_decay)), int(quantize(ref.voltage_decay)), fused)
        assert torch.equal(ours, voltage)
    assert fused.shape == ref.shape  # export reads the neuron's shape


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_fused_gradient_equals_lava_dl(params, shape):
    ref, fused = pair(params)
    z = inputs(shape, 7)
    g = torch.randn(shape)
    grads = []
    for neuron in (ref, fused):
        x = z.clone().requires_grad_()
        (neuron(x) * g).sum().backward()
        grads.append(x.grad)
    assert grads[0].abs().max() > 0  # the surrogate let some gradient through
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_fused_neuron_falls_back_to_lava_dl_where_it_does_not_apply():
    """Learnt decays need lava-dl's decay gradient: the fused class runs lava-dl's code and the decays learn."""
    neuron = Neuron(**{**NEURON, "requires_grad": True})
    neuron.__class__ = FusedNeuron
    x = inputs((2, 4, 12), 1).requires_grad_()
    neuron(x).sum().backward()
    assert neuron.current_decay.grad is not None and x.grad is not None


def dense_pair(hidden=16, inputs_=300, seed=0):
    torch.manual_seed(seed)
    ref = slayer.block.cuba.Dense(NEURON, inputs_, hidden, weight_scale=2)
    fast = slayer.block.cuba.Dense(NEURON, inputs_, hidden, weight_scale=2)
    fast.load_state_dict(ref.state_dict())
    fast.synapse.__class__ = SpikeDrivenDense
    with torch.no_grad():  # a sparse weight, as under a mask
        keep = torch.rand_like(ref.synapse.weight) < 0.3
        for b in (ref, fast):
            b.synapse.weight.mul_(keep)
    return ref, fast


@pytest.mark.parametrize("density", [0.01, 0.05, BREAK_EVEN / 2])
def test_spike_driven_synapse_equals_slayer_conv3d(density):
    ref, fast = dense_pair()
    x = (torch.rand(6, 300, 15) < density).float()
    assert fast.synapse.spike_driven(x)
    z_ref, z_fast = ref.synapse(x), fast.synapse(x)
    torch.testing.assert_close(z_fast, z_ref, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(z_ref)
    (z_ref * g).sum().backward()
    (z_fast * g).sum().backward()
    torch.testing.assert_close(fast.synapse.weight.grad, ref.synapse.weight.grad, rtol=1e-5, atol=1e-5)
    assert torch.equal(ref(x), fast(x))  # whole block: the same spikes


def test_spike_driven_synapse_stands_aside_above_break_even_or_with_an_input_gradient():
    _, fast = dense_pair()
    dense_input = (torch.rand(4, 300, 10) < 0.5).float()
    assert not fast.synapse.spike_driven(dense_input)
    sparse_input = (torch.rand(4, 300, 10) < 0.01).float().requires_grad_()
    assert not fast.synapse.spike_driven(sparse_input)
    fast.synapse(sparse_input).sum().backward()  # SLAYER's path gives the input its gradient
    assert sparse_input.grad is not None


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_kernels_switch(arch):
    torch.manual_seed(0)
    ours = build(arch, (2, 12, 12), 10, hidden=32)
    torch.manual_seed(0)
    theirs = build(arch, (2, 12, 12), 10, hidden=32, kernels="slayer")
    neurons = [type(b.neuron) for b in ours.blocks if hasattr(b, "neuron")]
    assert all(t is FusedNeuron for t in neurons)
    assert all(type(b.neuron) is Neuron for b in theirs.blocks if hasattr(b, "neuron"))
    assert (type(ours.blocks[0].synapse) is SpikeDrivenDense) == (arch == "mlp")
    x = (torch.rand(5, 2, 12, 12, 10) < 0.04).float()
    ours.eval(), theirs.eval()  # no dropout
    with torch.no_grad():
        out, layers = ours(x, record=True)
        ref, ref_layers = theirs(x, record=True)
    assert torch.equal(out, ref) and all(torch.equal(a, b) for a, b in zip(layers, ref_layers))
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    with pytest.raises(ValueError, match="unknown kernels"):
        install(list(ours.blocks), "numba")


def test_batched_fetch_equals_sample_by_sample():
    x = torch.rand(10, 2, 3, 3, 4) < 0.3
    data = BoolSpikes(x, torch.arange(10))
    batches = [[3, 1, 4], [0, 9, 2, 6], [8, 5, 7]]
    ours = torch.utils.data.DataLoader(data, batch_sampler=batches, collate_fn=collate)
    default = torch.utils.data.DataLoader(data, batch_sampler=batches)  # any other collate sees plain samples
    for b, (a, ya), (d, yd) in zip(batches, ours, default, strict=True):
        one_by_one = torch.stack([data[i][0] for i in b])
        assert a.dtype == torch.float32 and torch.equal(a, one_by_one) and torch.equal(d, one_by_one)
        assert ya.tolist() == yd.tolist() == b
    assert collate([(torch.ones(2), 1), (torch.zeros(2), 0)])[1].tolist() == [1, 0]
