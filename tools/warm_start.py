"""Warm starts of the bundled models that are not trained from scratch (weights/README.md).

    python tools/warm_start.py video weights/adaattn.safetensors runs/video/init.safetensors
    python tools/warm_start.py sanet weights/adaattn.safetensors runs/sanet/init.safetensors

Then `adaattn train --method <method> --init <the file> ...`; training keeps the file's variant.

video: the image model's relu3_1 block projections (same shapes) and its decoder from the relu3_1 skip on
(the video decoder is the image decoder's tail; its first conv takes the skip half of the 512->256 conv).
sanet: SANet blocks at relu3_1, relu4_1 and relu5_1 behind the image model's merge conv and decoder (same
shapes), each attending with the image model's block: its logits on the block's own level (the last piece of the
shallow+deep key) and its value conv, with out = identity, so the style comes in through the attention from the
first step. (Blocks that start as the identity, out = 0, were tried first: the decoder then learned one
style-independent look before the attention took part; weights/README.md.)
"""

import argparse

import torch

from adaattn_cli.models import build_model
from adaattn_cli.weights import load_model, save_model


def video_from_image_model(image):
    video = build_model("adaattn-video", image.encoder, max_style_positions=(4096,), width_divisor=image.config["width_divisor"])
    for name in ("query", "key", "value"):
        getattr(video.blocks[0], name).load_state_dict(getattr(image.blocks[0], name).state_dict())
    image_convs, video_convs = image.decoder.convs, video.decoder.convs
    skip = slice(image_convs[1].in_channels - video_convs[0].in_channels, None)
    video_convs[0].weight.copy_(image_convs[1].weight[:, skip])
    video_convs[0].bias.copy_(image_convs[1].bias)
    for k in range(1, len(video_convs)):
        video_convs[k].load_state_dict(image_convs[k + 1].state_dict())
    return video


def sanet_from_image_model(image):
    sanet = build_model("sanet", image.encoder, levels=(3, 4, 5), width_divisor=image.config["width_divisor"])
    sanet.merge.load_state_dict(image.merge.state_dict())
    sanet.decoder.load_state_dict(image.decoder.state_dict())
    for block, adaattn in zip(sanet.blocks, image.blocks):
        # AdaAttN's logits (W_q q + b_q).(W_k k + b_k) restricted to the key's last piece, Norm(F) of the block's own
        # level: query = identity, key = W_q^T W_k with bias W_q^T b_k. Left out: the shallow pieces and b_q's
        # per-key term (W_k^T b_q).k, which a SANet block cannot express (b_q.b_k shifts every logit alike).
        # Its value conv, and out = identity: F_c + the attention-weighted mean of the values.
        channels = block.query.in_channels
        identity = torch.eye(channels)[..., None, None]
        w_q, w_k = adaattn.query.weight[:, -channels:, 0, 0], adaattn.key.weight[:, -channels:, 0, 0]
        block.query.weight.copy_(identity)
        block.query.bias.zero_()
        block.key.weight.copy_((w_q.T @ w_k)[..., None, None])
        block.key.bias.copy_(w_q.T @ adaattn.key.bias)
        block.value.load_state_dict(adaattn.value.state_dict())
        block.out.weight.copy_(identity)
        block.out.bias.zero_()
    return sanet


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=["video", "sanet"])
    parser.add_argument("image_model", help="an adaattn image model file or name")
    parser.add_argument("output")
    args = parser.parse_args()
    image = load_model(args.image_model)
    if image.method != "adaattn":
        parser.error(f"{args.image_model} is a {image.method} model, not an adaattn image model")
    torch.manual_seed(0)
    with torch.no_grad():
        model = (video_from_image_model if args.method == "video" else sanet_from_image_model)(image)
    save_model(model, args.output, provenance={"warm_start": f"tools/warm_start.py {args.method} {args.image_model}"})
    print("wrote", args.output)


if __name__ == "__main__":
    main()
