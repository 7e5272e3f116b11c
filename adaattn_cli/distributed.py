"""Many processes, one job: torchrun's process group, each process's device and share of the work.

`torchrun --nproc-per-node N -m adaattn_cli train|stylize ...` starts N copies of the command with RANK,
WORLD_SIZE and LOCAL_RANK in their environment (several machines: `--nnodes` and a rendezvous endpoint).
Outside torchrun, or with one process, every function here is the single-process identity and no
process group is created, so the library never needs torch.distributed to be usable. torch is imported
inside the functions: the CLI reads its process's place before it loads torch (`adaattn --help` stays fast).
"""

from __future__ import annotations

import atexit
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence, TypeVar

from .errors import BadInputError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the processes torchrun started: rank 0 of 1 outside torchrun."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the process's index on its machine: which GPU it takes

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes shared files and prints summaries."""
        return self.rank == 0


def current_world() -> World:
    """From torchrun's environment variables."""
    try:
        return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise BadInputError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)") from None


def rank_device(device: torch.device, world: World) -> torch.device:
    """Each process on its own GPU (cuda:LOCAL_RANK) when the job runs on CUDA; CPU and MPS are shared."""
    import torch

    if world.size == 1 or device.type != "cuda":
        return device
    if device.index is not None and device.index != world.local_rank:
        raise BadInputError(f"--device {device}: under torchrun each process takes the GPU of its LOCAL_RANK; give --device cuda or auto")
    if world.local_rank >= torch.cuda.device_count():
        raise BadInputError(
            f"process {world.local_rank} on this machine has no GPU of its own ({torch.cuda.device_count()} GPUs): "
            "start at most one process per GPU (torchrun --nproc-per-node)"
        )
    return torch.device("cuda", world.local_rank)


def join(world: World, device: torch.device) -> None:
    """Joins torchrun's process group once per process (NCCL for CUDA tensors, gloo for CPU ones); left at exit."""
    import torch
    import torch.distributed as dist

    if world.size == 1 or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    atexit.register(dist.destroy_process_group)


def share(items: Sequence[T], index: int, count: int) -> list[T]:
    """Part `index` of `count` (0-based): every count-th item, so sizes differ by at most one and the parts
    of a sorted list are mixed alike; the parts are disjoint and together are all the items."""
    return list(items[index::count])


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' (1 <= K <= N) -> (K - 1, N): the K-th of N shares, as `split -n K/N` counts them."""
    part, _, count = text.partition("/")
    if not (part.isdigit() and count.isdigit() and 1 <= int(part) <= int(count)):
        raise BadInputError(f"--shard {text}: expected K/N with 1 <= K <= N, e.g. 1/4 for the first of four shares")
    return int(part) - 1, int(count)


def sum_over_processes(values: Sequence[float], world: World) -> list[float]:
    """Each value summed over all processes (the values themselves with one process)."""
    if world.size == 1:
        return list(values)
    import torch
    import torch.distributed as dist

    nccl = dist.get_backend() == "nccl"  # NCCL reduces CUDA tensors only
    tensor = torch.tensor(list(values), dtype=torch.float64, device=torch.cuda.current_device() if nccl else "cpu")
    dist.all_reduce(tensor)
    return tensor.tolist()


def wait_for_all(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        dist.barrier()


class StopRequests:
    """Ctrl-C (SIGINT) and torchrun's SIGTERM, as a flag the training loop reads between steps.

    torchrun passes a Ctrl-C to its workers as SIGTERM and kills them 30 s later. Raising in the middle of
    a step would leave the other processes waiting in the gradient all-reduce, so every process finishes
    its step and they agree on stopping (`sum_over_processes`); a second signal stops at once. Not enabled,
    it changes nothing: one process stops at Ctrl-C's KeyboardInterrupt."""

    def __init__(self, *, enabled: bool = True):
        self.enabled, self.requested = enabled, False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        for sig in (signal.SIGINT, signal.SIGTERM) if self.enabled else ():
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
