"""Training LoRA adapters: data preparation, backends (TRL+PEFT on CPU, unsloth on GPU), gates."""
