"""The model names the configs and CLIs accept, apart from rnnbench.models so that checking a name
and showing the list in `--help` import no torch. rnnbench.models builds one module per name."""

CLASSIFIERS = ("mlp", "elman", "elman_naive", "lstm", "gru")
LM_CELLS = ("lstm", "gru")  # the language model needs stacked layers, which nn.LSTM and nn.GRU have
