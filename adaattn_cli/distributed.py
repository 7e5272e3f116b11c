"""Many processes, one job: torchrun's process group, each process's device and share of the work.

`torchrun --nproc-per-node N -m adaattn_cli train|stylize ...` starts N copies of the command with RANK,
WORLD_SIZE and LOCAL_RANK in their environment (several machines: `--nnodes` and a rendezvous endpoint).
Outside torchrun, or with one process, every function here is the single-process identity and no
process group is created, so the library never needs torch.distributed to be usable. torch is imported
inside the functions: the CLI reads its process's place before it loads torch (`adaattn --help` stays fast).
"""

from __future__ import annotations

import atexit
import datetime
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from .errors import BadInputError, SettingError

if TYPE_CHECKING:
    from types import FrameType

    import torch

T = TypeVar("T")

JOIN_TIMEOUT_HOURS = 24  # how long a collective waits for the slowest process
REPORT_TIMEOUT_SECONDS = 60  # how long a process waits for process 0 to print an error they all met


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
    """Each process on its own GPU (cuda:LOCAL_RANK) when the job runs on CUDA; CPU and MPS are shared.

    Sets it as the current CUDA device at once, so whatever runs before `join` (precision checks, kernels)
    sees this process's GPU. The checks give the same answer in every process of a machine: only process 0
    reports input errors (cli/console.py), so an error only some processes saw would go unexplained."""
    import torch

    if world.size == 1 or device.type != "cuda":
        return device
    if device.index is not None:
        raise SettingError(
            f"{{device}} {device}: under torchrun each process takes the GPU of its LOCAL_RANK; give {{device}} cuda or auto"
        )
    processes_here = int(os.environ.get("LOCAL_WORLD_SIZE", world.local_rank + 1))
    if processes_here > torch.cuda.device_count():
        raise BadInputError(
            f"{processes_here} processes on this machine but {torch.cuda.device_count()} GPUs: "
            "start at most one process per GPU (torchrun --nproc-per-node)"
        )
    device = torch.device("cuda", world.local_rank)
    torch.cuda.set_device(device)
    return device


def join(world: World, device: torch.device) -> None:
    """Joins torchrun's process group once per process (NCCL for CUDA tensors, gloo for CPU ones); left at exit.

    `device` is `rank_device`'s, which has made it the current CUDA device."""
    import torch.distributed as dist

    if world.size == 1 or dist.is_initialized():
        return
    # torch's default of 10 minutes would end a long share: the last collective of `stylize` (the failure
    # count) waits for the slowest process, and a batch of refined 4K pictures takes hours.
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        device_id=device if device.type == "cuda" else None,
        timeout=datetime.timedelta(hours=JOIN_TIMEOUT_HOURS),
    )
    atexit.register(dist.destroy_process_group)


def error_reported(world: World) -> None:
    """Process 0 has printed an error that every process met: the others, waiting in `wait_for_error_report`, may exit."""
    store = _agent_store(world)
    if store is not None:
        store.set(_report_key(), "printed")


def wait_for_error_report(world: World, timeout: float = REPORT_TIMEOUT_SECONDS) -> bool:
    """Called by a process other than 0 before it exits on an error that every process met and process 0 prints.

    torchrun stops every process as soon as one of them exits with an error; process 0, a moment behind, would be
    stopped before its line is out. So the others wait, on torchrun's own store (no process group is needed: the
    error may come before one is joined), until process 0 says it has printed. False if it has not said so within
    `timeout` seconds: it did not meet the error, and the caller prints it. True without torchrun's store (nothing
    to wait on: process 0 reports, as it always did)."""
    store = _agent_store(world)
    if store is None:
        return True
    try:
        store.wait([_report_key()], datetime.timedelta(seconds=timeout))
    except Exception:  # the store's timeout (torch.distributed.DistStoreError), or a store that went away
        return False
    return True


def _agent_store(world: World):
    """A client of the key-value store torchrun's agent keeps for its workers; None with one process or without it."""
    if world.size == 1 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    import torch.distributed as dist

    try:
        return dist.TCPStore(
            os.environ["MASTER_ADDR"],
            int(os.environ["MASTER_PORT"]),
            is_master=False,
            timeout=datetime.timedelta(seconds=REPORT_TIMEOUT_SECONDS),
        )
    except (KeyError, ValueError, RuntimeError):
        return None


def _report_key() -> str:
    # per attempt: with --max-restarts, torchrun runs the workers again against the same store
    return f"adaattn/error-printed/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def share(items: Sequence[T], index: int, count: int) -> list[T]:
    """Part `index` of `count` (0-based): every count-th item, so sizes differ by at most one and the parts
    of a sorted list are mixed alike; the parts are disjoint and together are all the items."""
    return list(items[index::count])


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
    """Stop signals as a flag the training loop reads between steps.

    torchrun starts each worker in its own session, so a terminal's Ctrl-C reaches torchrun alone, which
    sends the signal it got (SIGINT; SIGTERM or SIGHUP from a scheduler or a closed terminal) to every
    worker's process group and SIGKILLs them `--shutdown-timeout` seconds later (30 by default); when one
    worker fails, it stops the others with SIGTERM. Raising in the middle of a step would leave the other
    processes waiting in the gradient all-reduce, so every process finishes its step and they agree on
    stopping (`sum_over_processes`); a second signal stops at once. Not enabled, it changes nothing: one
    process stops at Ctrl-C's KeyboardInterrupt."""

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, *, enabled: bool = True):
        self.enabled, self.requested = enabled, False
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}  # what signal.signal returned

    def __enter__(self) -> StopRequests:
        for sig in self.signals if self.enabled else ():
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            # None: a handler not installed from Python, which signal.signal cannot put back; the default then
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
