"""cuda_graphs = True: a fused group that replays its training steps from CUDA graphs trains what
the eager group trains, members that diverge still leave, and checkpoints still continue. CUDA
graphs need a GPU, so these are skipped elsewhere; benchmarks/gpu_session.sh runs them on a lent
one. What a CPU can check (padding every step to its static width changes nothing) is in
test_group.py and test_grammar_group.py."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from test_grammar_group import mixed

from rnnbench import metrics as M
from rnnbench.graphs import GraphedStep
from rnnbench.train.autoregressor import GrammarGroup
from rnnbench.train.classifier import ClassifierConfig, load_data
from rnnbench.train.group import GroupRun

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (gpu_session.sh runs these)")

# GPU steps add with atomics (index_add_, the embedding's backward), so even two eager runs agree
# only to rounding; a graph that replayed a stale or a clobbered buffer would be off by far more
GPU_RTOL = 1e-4
LOSSES = (M.TRAIN_LOSS_SUM, M.LOSS_PER_TOKEN, M.HELD_OUT_LOSS_PER_TOKEN, M.GRAD_NORM, M.TRAIN_LOSS, M.VAL_LOSS)


def assert_close_losses(graphed: list[dict], eager: list[dict]) -> None:
    """The same members each epoch, the same divergence, and every loss to GPU_RTOL."""
    assert [sorted(epoch) for epoch in graphed] == [sorted(epoch) for epoch in eager]
    for graphed_epoch, eager_epoch in zip(graphed, eager):
        for member, metrics in eager_epoch.items():
            assert graphed_epoch[member][M.DIVERGED] == metrics[M.DIVERGED]
            for key in LOSSES:
                if key in metrics and math.isfinite(metrics[key]):
                    assert graphed_epoch[member][key] == pytest.approx(metrics[key], rel=GPU_RTOL), (member, key)


def test_replays_in_any_order_of_shapes_do_what_eager_steps_do():
    """Two shapes alternating (their graphs share one memory pool) and the warm-up before each
    capture undone: the weights end where the same steps run eagerly leave them."""
    torch.manual_seed(0)
    weight = torch.randn(8, 4, device="cuda", requires_grad=True)
    eager_weight = weight.detach().clone().requires_grad_()

    def sgd_step(w: torch.Tensor):
        def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor]:
            w.grad = None
            loss = ((x @ w - y) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                w.sub_(0.1 * w.grad)
            return (loss.detach(),)

        return step

    graphed = GraphedStep(sgd_step(weight), lambda: [weight])
    eager = sgd_step(eager_weight)
    for rows in (16, 32, 16, 32, 16):
        x, y = torch.randn(rows, 8, device="cuda"), torch.randn(rows, 4, device="cuda")
        (loss,) = graphed(x, y)
        (eager_loss,) = eager(x, y)
        assert loss.item() == pytest.approx(eager_loss.item(), rel=1e-5)
        torch.testing.assert_close(weight, eager_weight)
    assert len(graphed.graphs) == 2


def test_a_graphed_grammar_group_trains_what_the_eager_one_trains(tmp_path):
    """Two grammars, momentum on one member, and one that diverges in epoch 1 (its leaving makes
    new stacked weights, so new graphs); then a checkpoint continued under graphs."""
    configs = [dataclasses.replace(c, device="cuda") for c in mixed()]
    eager = list(GrammarGroup(configs).epochs())
    graphed_configs = [dataclasses.replace(c, cuda_graphs=True) for c in configs]
    group = GrammarGroup(graphed_configs)
    graphed = list(group.epochs())
    assert_close_losses(graphed, eager)
    assert graphed[0][3][M.DIVERGED] and graphed[1][0][M.synth_acc(0.0)] == pytest.approx(eager[1][0][M.synth_acc(0.0)], abs=0.1)
    assert group.graphed is not None and group.graphed.graphs  # the epoch after the drop captured anew

    first = GrammarGroup(graphed_configs)
    head = [first.run_epoch()]
    first.save(tmp_path / "group.pt")
    tail = list(GrammarGroup.restore(tmp_path / "group.pt").epochs())
    assert_close_losses(head + tail, eager)


def test_a_graphed_classifier_group_trains_what_the_eager_one_trains(tiny_imdb):
    base = ClassifierConfig(
        model="lstm", data=str(tiny_imdb), embed_dim=32, hidden_dim=32, batch_size=16, epochs=2, device="cuda"
    )
    configs = [dataclasses.replace(base, lr=lr, seed=seed) for lr, seed in ((0.1, 0), (0.3, 1), (1e12, 2))]
    data = load_data(configs[0])
    eager = list(GroupRun(configs, data).epochs())
    graphed = list(GroupRun([dataclasses.replace(c, cuda_graphs=True) for c in configs], data).epochs())
    assert_close_losses(graphed, eager)
    assert [sorted(epoch) for epoch in graphed] == [[0, 1, 2], [0, 1]]
    for member in (0, 1):
        assert graphed[-1][member][M.VAL_ACC] == pytest.approx(eager[-1][member][M.VAL_ACC], abs=0.02)
