"""The two kinds of failure every task distinguishes: retry it, or never retry it."""


class TransientError(Exception):
    """A failure that may pass (network blip, 4xx SMTP reply, 5xx upstream): retried with backoff."""


class PermanentError(Exception):
    """A failure that retrying cannot fix (rejected recipient, invalid arguments): fails at once."""


class InvalidTaskArguments(PermanentError):
    """The message's arguments do not match the task's contract."""


class ContractNotImplemented(PermanentError):
    """The task is declared for this queue, but this worker does not implement it yet."""
