"""Run under torchrun by tests/test_distributed.py: trains each config of a JSON list with the library's Trainer.

    torchrun --nproc-per-node 2 tests/distributed_train.py configs.json [--resume]

Each process prints "trained <workdir> <steps>" or "interrupted <workdir> <message>"; process 0 writes the files.
"""

import json
import sys

from adaattn_cli.training import Interrupted, TrainConfig, Trainer


def main() -> None:
    configs = json.loads(open(sys.argv[1]).read())
    resume = "--resume" in sys.argv[2:]
    for settings in configs:
        trainer = Trainer(TrainConfig(**settings), resume=resume)
        print(f"resumed-from {trainer.resumed_from_processes}", flush=True)
        try:
            trainer.run()
        except Interrupted as stop:
            print(f"interrupted {settings['workdir']} {stop}", flush=True)
            sys.exit(130)
        print(f"trained {settings['workdir']} {trainer.step}", flush=True)


if __name__ == "__main__":
    main()
