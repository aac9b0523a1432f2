"""Metrics shared by the papers: subspace angles, spectra and ranks, errors, task scores."""
