"""Quiet-by-default output: rich progress for long work, one summary at the end, no library chatter."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)


def quiet_libraries() -> None:
    """Silence the progress bars and warnings transformers, datasets and friends print by default."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # tqdm reads this when it is first imported: call quiet_libraries() before importing transformers.
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 - quieting is best effort
        pass
    for name in ("transformers", "datasets", "peft", "trl", "mergekit", "torch", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def stage(title: str):
    """Show a spinner with the current step while a stage runs; print the elapsed time at the end."""
    start = time.perf_counter()
    if sys.stderr.isatty():
        with console.status(f"[bold]{title}[/]") as status:
            yield lambda msg: status.update(f"[bold]{title}[/]: {msg}")
    else:
        yield lambda msg: console.print(f"[dim]{title}: {msg}[/]")
    console.print(f"[green]✓[/] {title} ({time.perf_counter() - start:.1f}s)")
