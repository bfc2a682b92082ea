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
    shape of its inputs. Call it as `step`; its outputs are overwritten by the next call (of any
    shape), so read (or add up) them first, as the loops do.

    Before the first capture the step runs once eagerly on the capture stream, so that lazy
    set-ups (cuBLAS handles and workspaces, autograd's device threads) happen outside a capture,
    and `state` is put back as it was, so that this warm-up leaves no trace in training. Later
    shapes are captured without one: a second eager step would need as much memory again beside
    the graphs' pool (52 GB for the IMDB LSTM at K = 30), and drivers since CUDA 12.3 load kernels
    during capture. All graphs allocate from one private pool: a replay writes only its inputs'
    copies (allocated outside the pool), the state, and pool memory that nothing reads after it
    but the caller, who reads the outputs before the next call."""

    def __init__(self, step: Step, state: Callable[[], list[Tensor]]):
        self.step, self.state = step, state
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[Tensor], Sequence[Tensor]]] = {}
        self.stream = torch.cuda.Stream()  # the warm-up and every capture on one stream
        self.pool = torch.cuda.graph_pool_handle()

    def __call__(self, *inputs: Tensor) -> Sequence[Tensor]:
        key = tuple((x.shape, x.dtype) for x in inputs)
        if key not in self.graphs:
            self.graphs[key] = self._capture(inputs)
        graph, static_inputs, outputs = self.graphs[key]
        for buffer, x in zip(static_inputs, inputs):
            buffer.copy_(x)
        graph.replay()
        return outputs

    def _capture(self, inputs: Sequence[Tensor]) -> tuple[torch.cuda.CUDAGraph, list[Tensor], Sequence[Tensor]]:
        static_inputs = [x.clone() for x in inputs]
        if not self.graphs:
            self._warm_up(static_inputs)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
            outputs = self.step(*static_inputs)
        return graph, static_inputs, outputs

    def _warm_up(self, inputs: list[Tensor]) -> None:
        state = self.state()
        with torch.no_grad():
            saved = [t.clone() for t in state]
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            self.step(*inputs)
            with torch.no_grad():
                for t, before in zip(state, saved):
                    t.copy_(before)
        torch.cuda.current_stream().wait_stream(self.stream)
