"""One exception type for everything a user can get wrong.

The CLI turns a :class:`TagrankError` into a single ``error: ...`` line on stderr and a non-zero exit;
anything else is a bug and keeps its traceback.
"""


class TagrankError(Exception):
    """Bad input or a broken file: the message names the path, tag or field at fault."""
