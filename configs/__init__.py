"""Experiment configs (ml_collections), one file per task x method."""
