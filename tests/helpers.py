"""Helpers the tests share: an exact Stylizer, and tiny random models whose outputs spread over [0, 1]."""

import torch

from adaattn_cli.api import Stylizer


def exact_stylizer(model, **settings) -> Stylizer:
    """Stylizer.load on the CPU in fp32 (exact: what the tests compare against), unless `settings` say otherwise."""
    settings = {"device": "cpu", "precision": "fp32", **settings}
    return Stylizer.load(model, **settings)


@torch.no_grad()
def spread_outputs(model, probe: torch.Tensor):
    """Rescale the last conv so that the random model's outputs spread over [0, 1] (std 0.2 around 0.5 on
    `probe`) instead of clamping to one flat colour. Returns the model."""
    last = model.decoder.convs[-1]
    last.weight.mul_(0.2 / model(probe, probe).std())
    last.bias.add_(0.5 - model(probe, probe).mean())
    return model
