"""esl_train.kernels against lava-dl: the fused CUBA neuron (spikes and voltages bit-identical, gradients equal
within float tolerance, surrogate included), the 8-bit first synapse against SLAYER's Conv3d (bit-identical
forward, weight gradient within float tolerance on both of its paths), and the switch."""

import pytest
import torch

import lava.lib.dl.slayer as slayer
from lava.lib.dl.slayer.axon.delay import delay
from lava.lib.dl.slayer.neuron.cuba import Neuron
from lava.lib.dl.slayer.utils import quantize

from esl_train.data.framing import BoolSpikes, collate, time_major
from esl_train import kernels
from esl_train.kernels import install
from esl_train.kernels.cuba import FusedNeuron, dynamics
from esl_train.kernels.counts import batch_sum
from esl_train.kernels import optim as kernel_optim
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
        assert torch.equal(fused(time_major(z)), spikes)  # read in any memory layout
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
    for neuron, layout in ((ref, torch.clone), (fused, torch.clone), (fused, time_major)):
        x = layout(z).requires_grad_()
        (neuron(x) * g).sum().backward()
        grads.append(x.grad)
    assert grads[0].abs().max() > 0  # the surrogate let some gradient through
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)
    assert torch.equal(grads[2], grads[1])


@pytest.mark.parametrize("params", PARAMS[:2] + [{**NEURON, "dropout": slayer.neuron.Dropout(p=0.3)},
                                                 {**NEURON, "dropout": torch.nn.Dropout(p=0.3)}])
def test_fused_neuron_applies_the_block_delay_as_lava_dl(params):
    """With the block's one-step delay moved into it, the neuron's spikes equal lava-dl's delayed ones bit for bit
    and its input gradient equals theirs, on the fused path and on lava-dl's fallback (float64); with lava-dl's
    per-neuron Dropout (applied in the kernel) or any other dropout (applied after it), in training mode."""
    ref, fused = pair(params)
    fused.delay_shift = True
    z, g = inputs((4, 24, 11), 3), torch.randn(4, 24, 11)
    for dtype in (torch.float32, torch.float64):
        grads = []
        for neuron, shift in ((ref, delay), (fused, lambda x, _: x)):
            x = z.to(dtype, copy=True).requires_grad_()
            torch.manual_seed(0)  # the same dropout
            out = shift(neuron(x), 1)
            (out * g.to(dtype)).sum().backward()
            grads.append((out, x.grad))
        (ours, our_grad), (theirs, their_grad) = grads[1], grads[0]
        assert torch.equal(ours, theirs) and theirs[..., 0].abs().sum() == 0 and theirs.sum() > 0
        assert their_grad.abs().max() > 0
        torch.testing.assert_close(our_grad, their_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_kernels_train_as_lava_dl(arch):
    """In training mode (dropout on, the block delays in the neurons): the same outputs bit for bit, with the same
    random numbers drawn, and the same weight gradients within float rounding."""
    results = []
    for which in ("slayer", "auto"):
        torch.manual_seed(0)
        net = build(arch, (2, 12, 12), 10, hidden=32, kernels=which)
        x = (torch.rand(6, 2, 12, 12, 10) < 0.08).float()
        out = net(x)
        (out.sum(-1) * torch.arange(1.0, 11.0)).sum().backward()
        results.append((out, [p.grad for p in net.parameters() if p.grad is not None], torch.rand(1)))
    (theirs, their_grads, their_next), (ours, our_grads, our_next) = results
    assert torch.equal(ours, theirs) and theirs.sum() > 0 and torch.equal(our_next, their_next)
    assert len(our_grads) == len(their_grads) and all(g.abs().sum() > 0 for g in their_grads)
    for a, b in zip(our_grads, their_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


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
    assert batch_sum(x.detach()) is batch_sum(x)  # another view of the same batch: counted once
    x[0] = ~x[0]  # changed in place: counted again
    assert torch.equal(batch_sum(x.detach()), x.float().sum(0).int())
    assert torch.equal(batch_sum(x[1:]), x[1:].float().sum(0).int())  # same memory, other layout


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


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_equals_torch_adam_bit_for_bit(weight_decay):
    """Sparse gradients (most second moments stay exactly 0, as under a mask): parameters and optimizer state equal
    torch's Adam's bit for bit after every step; amsgrad runs torch's own step."""
    shapes = [(7,), (33, 5), (128, 300, 1, 1, 1)]
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(s, generator=g) for s in shapes]
    masks = [torch.rand(s, generator=g) < 0.1 for s in shapes]
    nets = [[torch.nn.Parameter(w.clone()) for w in start] for _ in range(2)]
    opts = [torch.optim.Adam(nets[0], lr=2e-3, weight_decay=weight_decay),
            kernel_optim.Adam(nets[1], lr=2e-3, weight_decay=weight_decay)]
    for _ in range(12):
        grads = [torch.randn(s, generator=g) * m * 10 ** torch.randint(-6, 1, (), generator=g) for s, m in
                 zip(shapes, masks)]
        for params, opt in zip(nets, opts):
            for p, grad in zip(params, grads):
                p.grad = grad.clone()
            opt.step()
        assert all(torch.equal(a, b) for a, b in zip(*nets))
    assert all(not torch.equal(a, w) for a, w in zip(nets[1], start))
    for a, b in zip(nets[0], nets[1]):
        sa, sb = opts[0].state[a], opts[1].state[b]
        assert weight_decay or (sa["exp_avg_sq"] == 0).float().mean() > 0.5  # the zeros this Adam avoids
        assert all(torch.equal(sa[k], sb[k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    values = torch.cat([torch.rand(5000, generator=g) * 10.0 ** torch.randint(-30, 30, (5000,), generator=g),
                        torch.zeros(3000), torch.tensor([float("inf"), float("nan"), -0.0])])
    for n in (1, 31, 5003, len(values)):  # vector and scalar tails of torch's kernel
        torch.testing.assert_close(kernel_optim.sqrt_skipping_zeros(values[:n]), values[:n].sqrt(), rtol=0, atol=0,
                                   equal_nan=True)
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    kernel_optim.Adam([p], lr=0.1, amsgrad=True).step()
    assert torch.allclose(p, torch.full((3,), 0.9))
    assert type(kernels.adam([p], 0.1, "slayer")) is torch.optim.Adam  # the switch: torch's own Adam
    assert type(kernels.adam([p], 0.1)) is kernel_optim.Adam


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
