"""The package logger. Warnings (OOV tags, dropped duplicates, skipped images) go here, not to print()."""

import logging

log = logging.getLogger("tagrank")


def progress_bar(iterable=None, enabled: bool = True, **kwargs):
    """A tqdm bar on stderr, shown only when asked for and stderr is a terminal (no log spam in pipes/CI)."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None if enabled else True, leave=False, **kwargs)
