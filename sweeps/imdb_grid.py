"""The study's section 2 at full scale: IMDB sentiment with MLP, Elman and LSTM classifiers over
learning rates and seeds, every combination a Ray Tune trial reporting each epoch.

    python sweeps/imdb_grid.py --preset smoke    # a few minutes on a laptop
    python sweeps/imdb_grid.py                   # 3 models x 6 lrs x 5 seeds x 10 epochs
    python sweeps/imdb_grid.py --resume          # after a crash: go on where it stopped
    python sweeps/imdb_grid.py --confirm         # best lr per model, 5 epochs on train/test
    python sweeps/imdb_grid.py --address head:6379 --storage /nfs/results   # on a Ray cluster

IMDB comes from --data, else $RNNBENCH_IMDB, else the cache, else it is downloaded.
"""

import sys

from rnnbench.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main("imdb", __doc__))
