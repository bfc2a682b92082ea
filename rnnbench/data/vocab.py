"""The special tokens every vocabulary starts with, defined once for text and grammars alike.

Their ids are fixed, so padding is id 0 (the embeddings' padding_idx) in every model, and any
vocabulary reads the same way: `.pad .start .end .unk`, then the dataset's own tokens.
"""

SPECIALS = (".pad", ".start", ".end", ".unk")
PAD, START, END, UNK = 0, 1, 2, 3  # positions in SPECIALS
