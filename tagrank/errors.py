"""One exception type for everything a user can get wrong.

The CLI turns a :class:`TagrankError` into a single ``error: ...`` line on stderr and exit status 2
(and the operating system's errors, and bugs, into one line with status 1: see ``tagrank.cli.main``).
"""


class TagrankError(Exception):
    """Bad input or a broken file: the message names the path, tag or field at fault."""


class SystemFailure(TagrankError):
    """The operating system's failure (a full disk, an unwritable place), named like a TagrankError; exit status 1."""


def os_reason(exc: OSError) -> str:
    """What the operating system said, as the lower-case end of one of our lines ("permission denied")."""
    return (exc.strerror or str(exc)).lower()
