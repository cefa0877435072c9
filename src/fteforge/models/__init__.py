"""Loading and materialising models safely (safetensors only, no remote code by default)."""
