"""The package logger. Warnings (OOV tags, dropped duplicates, skipped images) go here, not to print()."""

import logging

log = logging.getLogger("tagrank")
