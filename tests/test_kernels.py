"""esl_train.kernels against lava-dl: the fused CUBA neuron (spikes and voltages bit-identical, gradients equal
within float tolerance, surrogate included), the 8-bit first synapse against SLAYER's Conv3d (bit-identical
forward, weight gradient within float tolerance on both of its paths), and the switch."""

import pytest
import torch

import lava.lib.dl.slayer as slayer
from lava.lib.dl.slayer.neuron.cuba import Neuron
from lava.lib.dl.slayer.utils import quantize

from esl_train.data.framing import BoolSpikes, collate
from esl_train.kernels import install
from esl_train.kernels.cuba import FusedNeuron, dynamics
from esl_train.kernels.counts import batch_sum
from esl_train.kernels import synapse as kernel_synapse
from esl_train.kernels.synapse import BinaryInputDense
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


def dense_pair(hidden=16, inputs_=300, seed=0, spread=1.0):
    """lava-dl's dense block and the same block with the 8-bit synapse; `spread` scales the weights (60 reaches
    both ends of the 8-bit range)."""
    torch.manual_seed(seed)
    ref = slayer.block.cuba.Dense(NEURON, inputs_, hidden, weight_scale=2)
    fast = slayer.block.cuba.Dense(NEURON, inputs_, hidden, weight_scale=2)
    with torch.no_grad():  # a sparse weight, as under a mask
        ref.synapse.weight.mul_((torch.rand_like(ref.synapse.weight) < 0.3) * spread)
    fast.load_state_dict(ref.state_dict())
    install([fast])
    return ref, fast


@pytest.mark.parametrize("density", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("spread", [1.0, 60.0])
def test_8bit_synapse_is_bit_identical_to_slayer_conv3d(density, spread):
    ref, fast = dense_pair(spread=spread)
    k = ref.synapse._pre_hook_fx(ref.synapse.weight) / fast.synapse.weight_step
    assert spread == 1 or (k.min() == -128 and k.max() == 127)  # the ends of the 8-bit range are in play
    x = torch.rand(6, 300, 15) < density
    assert fast.synapse.int8(x) and type(fast.neuron) is FusedNeuron
    z_ref, z_fast = ref.synapse(x.float()), fast.synapse(x)
    assert torch.equal(z_fast, z_ref)
    g = torch.randn_like(z_ref)
    (z_ref * g).sum().backward()
    (z_fast * g).sum().backward()
    assert ref.synapse.weight.grad.abs().max() > 0
    torch.testing.assert_close(fast.synapse.weight.grad, ref.synapse.weight.grad, rtol=1e-5, atol=1e-5)
    assert torch.equal(ref(x.float()), fast(x))  # whole block: the same spikes


@pytest.mark.parametrize("density", [0.02, 0.3])
def test_spike_driven_weight_gradient_equals_the_gemm(density):
    """Either side of the break-even both paths give the Conv3d's gradient; the spike-driven one is deterministic."""
    g = torch.Generator().manual_seed(3)
    rows = (torch.rand(200, 70, generator=g) < density).to(torch.uint8)
    grad = torch.randn(200, 24, generator=g)
    expected = torch.ops.aten.convolution_backward(
        grad.reshape(1, 200, 24).transpose(1, 2).reshape(1, 24, 1, 1, 200), rows.float().t().reshape(1, 70, 1, 1, 200),
        torch.zeros(24, 70, 1, 1, 1), None, [1, 1, 1], [0, 0, 0], [1, 1, 1], False, [0, 0, 0], 1,
        [False, True, False])[1].reshape(24, 70)
    paths = {}
    for below in (0.0, 1.0):  # GEMM always, spike-driven always
        paths[below] = kernel_synapse.weight_gradient(rows, grad, below)
        torch.testing.assert_close(paths[below], expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(paths[1.0], kernel_synapse.weight_gradient(rows, grad, 1.0))


def test_8bit_synapse_stands_aside_for_float_input_or_unquantized_weights():
    ref, fast = dense_pair()
    x = (torch.rand(4, 300, 10) < 0.1).float().requires_grad_()
    assert not fast.synapse.int8(x)
    fast.synapse(x).sum().backward()  # SLAYER's path gives the input its gradient
    assert x.grad is not None
    unquantized = slayer.block.cuba.Dense(NEURON, 300, 16, pre_hook_fx=lambda w: w)
    install([unquantized])
    spikes = torch.rand(4, 300, 10) < 0.1
    assert unquantized.synapse.weight_step is None and not unquantized.synapse.int8(spikes)
    assert torch.equal(unquantized.synapse(spikes), unquantized.synapse(spikes.float()))


def test_spike_counts_of_bool_batches_equal_float_sums():
    x = torch.rand(600, 7, 3) < 0.9  # more than 255 samples: byte sums must not wrap
    assert torch.equal(batch_sum(x), x.float().sum(0).int())
    tm = BoolSpikes(torch.rand(300, 2, 3, 4, 5) < 0.9, torch.zeros(300)).x  # time-major, as training batches
    assert not tm.is_contiguous() and torch.equal(batch_sum(tm), tm.float().sum(0).int())
    assert torch.equal(batch_sum(x.float()), x.float().sum(0))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_kernels_switch(arch):
    torch.manual_seed(0)
    ours = build(arch, (2, 12, 12), 10, hidden=32)
    torch.manual_seed(0)
    theirs = build(arch, (2, 12, 12), 10, hidden=32, kernels="slayer")
    neurons = [type(b.neuron) for b in ours.blocks if hasattr(b, "neuron")]
    assert all(t is FusedNeuron for t in neurons)
    assert all(type(b.neuron) is Neuron for b in theirs.blocks if hasattr(b, "neuron"))
    assert (type(ours.blocks[0].synapse) is BinaryInputDense) == (arch == "mlp")
    x = torch.rand(5, 2, 12, 12, 10) < 0.04  # bool, as the data sets' batches
    ours.eval(), theirs.eval()  # no dropout
    with torch.no_grad():
        out, layers = ours(x, record=True)
        ref, ref_layers = theirs(x.float(), record=True)
    assert torch.equal(out, ref) and all(torch.equal(a, b) for a, b in zip(layers, ref_layers))
    with torch.no_grad():
        assert torch.equal(theirs(x), ref) and torch.equal(ours(x.float()), ref)  # either net reads either dtype
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
        assert a.dtype == d.dtype == torch.bool and torch.equal(a.float(), one_by_one) and torch.equal(d, a)
        assert ya.tolist() == yd.tolist() == b
    assert collate([(torch.ones(2), 1), (torch.zeros(2), 0)])[1].tolist() == [1, 0]


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_time_major_batches_train_as_sample_major_ones(arch):
    """BoolSpikes keeps spikes time-major, so a gathered batch is the first synapse's rows without a copy; the
    network's outputs and weight gradients are bit-identical to those from the same batch laid out sample-major."""
    x = torch.rand(12, 2, 6, 6, 9) < 0.1
    data = BoolSpikes(x, torch.arange(12) % 10)
    assert torch.equal(data.x, x) and data.x.flatten(1, 3)[:4].transpose(1, 2).is_contiguous()
    assert BoolSpikes(x, torch.arange(12), time_major_layout=False).x.is_contiguous()
    batch, labels = collate(data.__getitems__([5, 0, 7, 3]))
    assert batch.flatten(1, 3).transpose(1, 2).is_contiguous()  # the gather keeps the layout
    grads = []
    for spikes in (batch, batch.contiguous()):
        torch.manual_seed(0)
        net = build(arch, (2, 6, 6), 10, hidden=32, dropout=0)
        out = net(spikes)
        (out.sum(-1) * torch.arange(1.0, 11.0)).sum().backward()
        grads.append((out, [p.grad for p in net.parameters() if p.grad is not None]))
    assert torch.equal(grads[0][0], grads[1][0]) and grads[0][0].abs().sum() > 0
    assert len(grads[0][1]) > 0 and all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1]))
