"""The lab's one error type: what went wrong and what to do about it."""


class LabError(Exception):
    """A lab operation failed for a reason a person can act on."""
