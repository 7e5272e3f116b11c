import pytest
import torch

from adaattn_cli.encoders import build_encoder
from adaattn_cli.models import build_model


@pytest.fixture(scope="session")
def encoder():
    torch.manual_seed(0)
    return build_encoder("vgg16-hed")


@pytest.fixture(scope="session")
def models(encoder):
    """One randomly initialised model per method, sharing the encoder."""
    torch.manual_seed(1)
    return {method: build_model(method, encoder).eval() for method in ("adaattn", "adaattn-video", "adain", "sanet")}


@pytest.fixture
def images():
    generator = torch.Generator().manual_seed(2)
    return {
        "content": torch.rand(3, 64, 80, generator=generator),
        "style": torch.rand(3, 48, 64, generator=generator),
        "style2": torch.rand(3, 64, 64, generator=generator) ** 2,
    }
