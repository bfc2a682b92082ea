"""The one vocabulary of metric names, shared by the loops, the sweeps, the tables and the plots.

Every per-epoch metrics dict uses these keys; the results layer reads them back by the same names.
"""

EPOCH = "epoch"  # 1-based number of completed epochs
DIVERGED = "diverged"  # True once the training loss is not finite (grammars: or worse than uniform); the loop then stops
EPOCH_S = "epoch_s"  # wall seconds of the epoch, training and evaluation together
TOKENS_PER_S = "tokens_per_s"  # real (non-padding) training tokens per second of training time

# classifier
TRAIN_LOSS = "train_loss"  # mean cross-entropy per batch over the epoch
TRAIN_LOSS_SUM = "train_loss_sum"  # sum of the batch losses: the study's "cumulative loss"
TRAIN_ACC = "train_acc"
VAL_LOSS = "val_loss"
VAL_ACC = "val_acc"
TEST_LOSS = "test_loss"  # with final=True the held-out split is the official test set
TEST_ACC = "test_acc"
CHANCE_ACC = "chance_acc"  # accuracy of always predicting the eval split's majority class

# autoregressor (grammars)
LOSS_PER_TOKEN = "loss_per_token"
HELD_OUT_LOSS_PER_TOKEN = "held_out_loss_per_token"  # after the epoch, no gradient, on the held-out strings
GRAD_NORM = "grad_norm"


def synth_acc(temperature: float) -> str:
    """Share of valid sequences sampled from `.start` at this temperature, e.g. `synth_acc@t0.5`."""
    return f"synth_acc@t{temperature:g}"


def synth_distinct(temperature: float) -> str:
    """Distinct valid samples from `.start` over all samples at this temperature: a model that
    collapsed onto one short word scores 1 / num_samples, however valid that word is."""
    return f"synth_distinct@t{temperature:g}"


def compl_acc(temperature: float) -> str:
    """Share of valid completions of held-out half sequences at this temperature."""
    return f"compl_acc@t{temperature:g}"


def synth_example(temperature: float, valid: bool) -> str:
    """The first valid (or invalid) synthesised sample as text, or None if there was none."""
    return f"synth_{'valid' if valid else 'invalid'}_example@t{temperature:g}"


def compl_example(temperature: float, valid: bool) -> str:
    """The first valid (or invalid) completion as text (prefix included), or None."""
    return f"compl_{'valid' if valid else 'invalid'}_example@t{temperature:g}"
