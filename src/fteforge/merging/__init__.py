"""Merging two LoRA adapters trained on one base into one model.

`analysis` inspects the adapters (shapes, compatibility, interference between their weight
updates dW = (alpha/r) B A) and picks the spec's primary or backup merge method; `engines` holds
the merge back ends: mergekit (full-weight merge, the main path) and PEFT (merge in LoRA space,
the small release option).
"""
