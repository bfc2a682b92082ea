"""A fused group's training step replayed from CUDA graphs (`cuda_graphs = True` in both configs).

On a GPU the study's small models are bound by kernel launches: a grammar step of the fused LSTM
launches a few kernels per time step, forward and backward, each doing microseconds of work. A
CUDA graph records one step's kernels once and replays them with one launch. A graph holds fixed
shapes and addresses, so steps are padded to a few widths (`rnnbench.data.batching.static_width`),
each width gets its graph on first use, and members leaving the group (new stacked weights) start
over with new graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Step = Callable[..., Sequence[Tensor]]


class GraphedStep:
    """`step(*inputs) -> outputs`, which updates the tensors `state()` lists (parameters, momentum
    buffers) in place and depends on nothing else that changes, replayed from one CUDA graph per
    shape of its inputs. Call it as `step`; its outputs are buffers that the next call overwrites,
    so read (or add up) them first, as the loops do.

    Capturing a shape: the step runs once on the capture stream, so that lazy set-ups (cuBLAS
    handles and workspaces, autograd's device threads) happen outside the capture; `state` is then
    put back as it was, so that this warm-up leaves no trace in training; then the step is
    captured. All graphs allocate from one private pool, which is safe in any replay order because
    no pool memory is read across replays: the inputs are copied in, and the outputs out, to
    buffers allocated outside the pool."""

    def __init__(self, step: Step, state: Callable[[], list[Tensor]]):
        self.step, self.state = step, state
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[Tensor], list[Tensor]]] = {}
        self.stream = torch.cuda.Stream()  # the warm-up and every capture on one stream
        self.pool = torch.cuda.graph_pool_handle()

    def __call__(self, *inputs: Tensor) -> list[Tensor]:
        key = tuple((x.shape, x.dtype) for x in inputs)
        if key not in self.graphs:
            self.graphs[key] = self._capture(inputs)
        graph, static_inputs, outputs = self.graphs[key]
        for buffer, x in zip(static_inputs, inputs):
            buffer.copy_(x)
        graph.replay()
        return outputs

    def _capture(self, inputs: Sequence[Tensor]) -> tuple[torch.cuda.CUDAGraph, list[Tensor], list[Tensor]]:
        static_inputs = [x.clone() for x in inputs]
        state = self.state()
        with torch.no_grad():
            saved = [t.clone() for t in state]
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            outputs = [torch.empty_like(y) for y in self.step(*static_inputs)]
            with torch.no_grad():
                for t, before in zip(state, saved):
                    t.copy_(before)
        torch.cuda.current_stream().wait_stream(self.stream)
        del saved
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
            for buffer, y in zip(outputs, self.step(*static_inputs)):
                buffer.copy_(y)
        return graph, static_inputs, outputs
