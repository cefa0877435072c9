"""fteforge: a declarative, spec-driven build system for Digital FTE language models."""

__version__ = "0.1.0"
