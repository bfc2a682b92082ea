"""The study's section 3 at full scale: a next-token LSTM on two generated grammars (balanced
brackets; s(abc!)*s-style words) over learning rates and seeds, scored every epoch by the share of
valid sequences it samples (Synthesis) and completes (Completion) at five temperatures.

    python sweeps/grammar_grid.py --preset smoke    # a few minutes on a laptop
    python sweeps/grammar_grid.py                   # 2 grammars x 6 lrs x 10 seeds x 10 epochs
    python sweeps/grammar_grid.py --resume          # after a crash: go on where it stopped

Needs no download: the words are generated from each trial's seed.
"""

import sys

from rnnbench.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main("grammar", __doc__))
