"""The training-cost counter on toy networks, against counts done by hand (RigL's appendix H rule, SNN SynOps)."""

import pytest
import torch
import torch.nn.functional as F

from esl_train.cost import TrainingCost
from esl_train.models import build


def test_dense_layers_macs_synops_and_the_dense_gradient_step():
    torch.manual_seed(0)
    net = build("mlp", (1, 2, 2), 2, hidden=3, dropout=0)  # 4 -> 3 -> 2
    blocks = net.weighted_blocks()
    masks = {"layer1": torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool).view(3, 4, 1, 1, 1),
             "layer2": torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=torch.bool).view(2, 3, 1, 1, 1)}
    cost = TrainingCost(blocks, masks)
    x = (torch.rand(2, 1, 2, 2, 5) > 0.3).float()  # N=2 samples, T=5 steps
    net.train()
    _, (hidden, _) = net(x, record=True)
    samples = 2 * 5
    spikes_in = x.flatten(1, 3).sum((0, 2))  # per input neuron
    synops = float(spikes_in @ masks["layer1"].view(3, 4).sum(0).float())
    synops += float(hidden.sum((0, 2)) @ masks["layer2"].view(2, 3).sum(0).float())
    assert cost.synops == pytest.approx(synops)
    active, possible = (6 + 3) * samples, (12 + 6) * samples
    cost.step(dense_gradient=False)
    assert cost.macs == 3 * active and cost.dense_macs == 3 * possible
    net(x)
    cost.step(dense_gradient=True)  # RigL's update step: the weight gradient of every synapse
    assert cost.macs == 3 * active + 3 * active + (possible - active)
    s = cost.summary()
    assert s["train_cost_vs_dense"] == pytest.approx((5 * active + possible) / (6 * possible))
    assert s["train_flops"] == 2 * cost.macs
    net.eval()
    net(x)
    cost.step()
    assert cost.macs == 5 * active + possible  # evaluation is not training


def test_a_convolution_counts_one_mac_per_output_position_and_its_reached_synapses():
    torch.manual_seed(1)
    net = build("conv", (2, 6, 6), 3, hidden=64, dropout=0)  # 2 -> 4 channels, stride 2, padding 1
    block = net.weighted_blocks()["layer1"]
    w = block.synapse.weight
    mask = torch.rand(w.shape) < 0.4
    cost = TrainingCost({"layer1": block}, {"layer1": mask})
    x = (torch.rand(3, 2, 6, 6, 4) > 0.5).float()
    net.train()
    block(x)
    # every time step and sample on its own, through the mask as weights: what linearity lets the counter skip
    by_hand = sum(F.conv2d(x[n, ..., t][None], mask[..., 0].float(), stride=2, padding=1).sum()
                  for n in range(3) for t in range(4))
    assert cost.synops == pytest.approx(float(by_hand))
    cost.step()
    assert cost.macs == 3 * int(mask.sum()) * 3 * 3 * (3 * 4)  # 3x3 output positions, 12 sample-steps
