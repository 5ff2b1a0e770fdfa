"""Image-task models start at the identity: the zeroed output layer predicts exactly 0 (so the
prediction is the task's base), and training still moves every layer after the first step."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from taskalign.baselines import build_specialised
from taskalign.encoders import create_encoder
from taskalign.heads import build_head
from taskalign.models import SpecialisedModel, TaskModel
from taskalign.residual_start import zero_output_layer

SHAPE = (8, 32, 32)


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    encoder = create_encoder("profound_conv", size="micro", input_sequences=("t2w",))
    return {
        "dynunet": SpecialisedModel(build_specialised("image", 1, 1, SHAPE, filters=(4, 8, 16, 32))),
        "unetr_head": TaskModel(encoder, build_head("image", encoder, 3, 1, feature_size=4)),
    }


@pytest.mark.parametrize("name", ["dynunet", "unetr_head"])
def test_zeroed_output_predicts_zero_residual_and_still_learns(name):
    model = _models()[name]
    x = torch.randn(2, 3 if name == "unetr_head" else 1, *SHAPE)
    assert model(x).abs().max() > 0  # the random init does not start at the identity
    zero_output_layer(model.head if name == "unetr_head" else model.net)
    assert torch.equal(model(x), torch.zeros_like(model(x)))
    before = {k: v.clone() for k, v in model.named_parameters()}
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    target = torch.randn(2, 1, *SHAPE)
    for _ in range(2):  # step 1 moves only the output layer; step 2 reaches the layers below
        optimiser.zero_grad()
        nn.functional.l1_loss(model(x), target).backward()
        optimiser.step()
    moved = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    first_conv = next(k for k, _ in model.named_parameters() if k.endswith("weight"))
    assert first_conv in moved and model(x).abs().max() > 0


def test_a_model_without_an_output_block_is_refused():
    with pytest.raises(ValueError, match="no UnetOutBlock"):
        zero_output_layer(nn.Sequential(nn.Conv3d(1, 1, 1)))
