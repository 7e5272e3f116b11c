"""The element-wise mean of model files of one method and architecture (a "model soup"), with every input's
provenance kept in the header.

    python tools/average_models.py runs/a/step500.safetensors runs/b/step50.safetensors -o soup.safetensors \
        --base weights/adaattn.safetensors --note "two fine-tunes of the bundled model, averaged"

Fine-tunes of one starting model sit in one basin of the loss: their mean keeps what each learnt and averages out
part of each run's noise (weights/README.md has where it measured better than either input).
"""

import argparse
from pathlib import Path

import torch

from adaattn_cli.training import model_record
from adaattn_cli.weights import load_model, read_model_header, save_model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--base", help="the model the inputs were fine-tuned from (its provenance is kept as 'init')")
    parser.add_argument("--note", action="append", default=[], help="a line for the header's stages (repeatable)")
    args = parser.parse_args()
    models = [load_model(path) for path in args.models]
    if len({(m.method, str(m.config)) for m in models}) != 1:
        parser.error("the models differ in method or architecture; only models of one kind can be averaged")
    states = [m.trainable_state() for m in models]
    mean = {name: torch.stack([s[name].float() for s in states]).mean(0) for name in states[0]}
    soup = models[0]
    soup.load_state_dict(mean, strict=False)
    provenance = {
        **({"init": model_record(args.base)} if args.base else {}),
        "averaged": [{"file": path.name, "provenance": read_model_header(path)["provenance"]} for path in args.models],
        "stages": [*args.note, f"element-wise mean of {', '.join(path.name for path in args.models)}"],
    }
    save_model(soup, args.output, provenance=provenance)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
