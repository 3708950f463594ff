"""Fixtures of the engine tests: a toy method that needs no dataset."""
import pytest
import torch
from torch import nn

from semipose.core.loss import SupervisedLoss
from semipose.methods import Method


class ToyMethod(Method):
    """One 1x1 conv from 3 to 2 channels (seeded); supervised MSE."""

    def build_model(self, is_train):
        torch.manual_seed(0)
        return nn.Conv2d(3, 2, 1)

    def build_criterion(self, use_target_weight):
        return SupervisedLoss(use_target_weight)

    def labeled_heatmap(self, outputs):
        return outputs


@pytest.fixture(scope="session")
def toy_method():
    """The class of a toy method: one 1x1 conv from 3 to 2 channels; supervised MSE."""
    return ToyMethod
