"""Evaluation: persona scoring and, later, the gates that adapters must pass."""
