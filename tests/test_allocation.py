import math

import pytest

from esl_train.sparsity import layer_counts, layer_densities

SHAPES = {"a": (128, 1152, 1, 1, 1), "b": (10, 128, 1, 1, 1)}
CONV = {"c1": (8, 2, 3, 3, 1), "c2": (16, 8, 3, 3, 1), "fc": (10, 576, 1, 1, 1)}


@pytest.mark.parametrize("allocation", ["er", "erk", "uniform"])
@pytest.mark.parametrize("density", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("shapes", [SHAPES, CONV])
def test_total_density_is_the_target(shapes, density, allocation):
    counts = layer_counts(shapes, density, allocation)
    possible = sum(math.prod(s) for s in shapes.values())
    assert abs(sum(counts.values()) - density * possible) <= len(shapes)
    assert all(1 <= counts[k] <= math.prod(s) for k, s in shapes.items())


def test_er_favours_small_layers_and_caps_at_dense():
    d = layer_densities(SHAPES, 0.1, "er")
    assert d["b"] == 1.0  # (10+128)/(10*128) * eps exceeds 1: the small output layer stays dense
    assert 0.08 < d["a"] < 0.1


def test_erk_counts_kernel_size():
    er, erk = layer_densities(CONV, 0.1, "er"), layer_densities(CONV, 0.1, "erk")
    assert erk["c2"] != er["c2"]


def test_uniform_is_the_same_everywhere():
    assert set(layer_densities(SHAPES, 0.3, "uniform").values()) == {0.3}
