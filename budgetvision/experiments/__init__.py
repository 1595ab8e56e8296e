"""Experiments of the papers that combine runs: synthetic-data mixes and PCA against a GAN (Rzayev)."""
