"""A whole training step (loss, backward, clip, Adam) captured once as a CUDA graph and replayed every step.

A small UNet at 64 px launches hundreds of tiny kernels per step and the GPU waits on Python between them; a
replay launches them all at once. PyTorch's recipe ("whole network capture", torch.cuda.graphs docs): warm up on
a side stream so lazily created state (Adam's moments, cuDNN plans) exists, then capture with grads set to None,
so backward writes them into the graph's own memory. What a capture needs and this class provides:
- fixed addresses: the batch goes in through `static_x`, the lr through a one-element tensor that Adam reads
  (capturable=True), the loss comes out through `static_loss`;
- the warm-up steps leave no trace: weights, Adam's state, the noise generator and any other state the step
  changes (the loss scale) are put back afterwards, so a graphed run takes the same steps as an eager one would;
- the noise generator is registered with the graph, so every replay draws fresh t and eps from it;
- under torch.distributed the step holds an NCCL all-reduce: the warm-up's collectives are finished (one host
  sync) and the capture is thread-local, so NCCL's watchdog thread, which queries the events of earlier
  collectives, cannot invalidate it (pytorch/pytorch#104487, #105182).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

WARMUP_STEPS = 3


class GraphedStep:
    """`step = GraphedStep(body, optimizer, generator, x)`, then `loss = step(x, lr)` every step.

    body(x) must run one whole optimizer step on x (B, C, H, W) (forward, backward, clip, optimizer.step()) and
    return the loss as a 0-dim tensor; it may not synchronise with the host. The optimizer must be
    capturable with a tensor lr shared by its groups (make_capturable). `state`: other device tensors the body
    updates in place (the loss scale), put back after the warm-up like the weights. `collectives`: the body holds
    a torch.distributed all-reduce."""

    def __init__(self, body: Callable[[torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer,
                 generator: torch.Generator, example: torch.Tensor, state: Sequence[torch.Tensor] = (),
                 collectives: bool = False):
        self.optimizer = optimizer
        self.lr: torch.Tensor = optimizer.param_groups[0]["lr"]
        self.static_x = example.detach().clone()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        saved_params = [p.detach().clone() for p in params]
        saved_state = {p: {k: v.clone() for k, v in optimizer.state[p].items()} for p in params if p in optimizer.state}
        saved_rng = generator.get_state()
        saved_extra = [t.clone() for t in state]

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                optimizer.zero_grad(set_to_none=True)
                body(self.static_x)
        torch.cuda.current_stream().wait_stream(side)

        # undo the warm-up: Adam's state tensors now exist (the graph will update them in place), with the
        # values of before, or zeros (= a fresh Adam) where there was none
        with torch.no_grad():
            for p, saved in zip(params, saved_params):
                p.copy_(saved)
            for p in params:
                for key, value in optimizer.state[p].items():
                    if p in saved_state:
                        value.copy_(saved_state[p][key])
                    else:
                        value.zero_()
            for tensor, saved in zip(state, saved_extra):
                tensor.copy_(saved)
        generator.set_state(saved_rng)

        self.graph = torch.cuda.CUDAGraph()
        self.graph.register_generator_state(generator)
        optimizer.zero_grad(set_to_none=True)
        if collectives:
            torch.cuda.synchronize()  # the warm-up's all-reduces done before the capture starts
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local" if collectives else "global"):
            self.static_loss = body(self.static_x)

    def __call__(self, x: torch.Tensor, lr: float) -> torch.Tensor:
        """One step on batch x (the captured shape) at learning rate lr; the loss as a new 0-dim tensor."""
        self.static_x.copy_(x, non_blocking=True)
        self.lr.fill_(lr)
        self.graph.replay()
        return self.static_loss.clone()  # the next replay overwrites static_loss


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Let `optimizer` run inside a CUDA graph: capturable, with one device tensor as every group's lr (a float
    would be baked into the graph). Call again after load_state_dict, which brings back the saved groups."""
    lr = torch.tensor(float(optimizer.param_groups[0]["lr"]), device=device)
    for group in optimizer.param_groups:
        group["capturable"] = True
        group["lr"] = lr
