"""Training across processes: ``torchrun --nproc_per_node N -m tagrank.cli train ...``.

Every process runs the same trainer on the same data order; each computes the loss of its share of
every batch (rows rank, rank + N, ...) and the gradients are summed across processes weighted by the
share sizes, so an optimizer step sees the gradient of the whole batch's mean loss, as in one process.
Only the first process (the leader) extracts features into the shared cache and writes the run folder
(model, history, checkpoints); the others wait for it. Communication is ``gloo`` on CPUs and ``nccl``
on GPUs; torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``...) says who
is who, on one machine or several.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Team:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def local(self, device: torch.device) -> torch.device:
        """This process's own GPU when the team trains on GPUs (one per process)."""
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return device

    def share(self, rows: torch.Tensor) -> torch.Tensor:
        """This process's rows of a batch."""
        return rows[self.rank::self.size] if self.distributed else rows

    def sum_gradients(self, parameters: list[torch.nn.Parameter], weight: float) -> None:
        """Replace each gradient g_r (of this share's mean loss) by Σ_r weight_r · g_r across processes,
        with weight_r = share size / batch size: the gradient of the whole batch's mean loss."""
        if not self.distributed:
            return
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads]) * weight
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(parameters, grads):
            p.grad = flat[offset:offset + g.numel()].view_as(g).clone()
            offset += g.numel()

    def wait(self) -> None:
        """All processes meet here (the followers wait for what the leader writes)."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


def join(device: torch.device) -> Team:
    """The team torchrun started this process in, or a team of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return Team()
    import torch.distributed as dist

    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Team(dist.get_rank(), dist.get_world_size())
