"""Dataset and evaluation-suite construction from the specs."""
