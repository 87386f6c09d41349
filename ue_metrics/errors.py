"""One exception type for user mistakes: the CLI prints its message as one sentence and exits non-zero."""


class UserError(Exception):
    """Bad input from a user (a file, a field, an option); the message says what is wrong and what to do."""
