"""Datasets (IMDB, generated grammars) and batching."""
