"""One exception type for user mistakes: the CLI prints its message as one sentence and exits non-zero."""


class UserError(Exception):
    """Bad input from a user (a file, a field, an option); the message says what is wrong and what to do."""


# the seeds every generator ue seeds accepts alike (numpy, Python's random, torch, transformers' set_seed, the
# servers' `seed` fields): whole numbers from 0 to 2**32 - 1
MAX_SEED = 2**32 - 1


def check_seed(value: object, what: str = "--seed") -> int:
    """``value`` as a seed, or one sentence saying why it is not one (``what`` names the flag or field)."""
    seed = value
    if isinstance(value, str):
        try:
            seed = int(value.strip())
        except ValueError:
            raise UserError(f"{what} must be a whole number from 0 to {MAX_SEED}, got {value!r}") from None
    elif isinstance(value, float) and value.is_integer():
        seed = int(value)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"{what} must be a whole number from 0 to {MAX_SEED}, got {value!r}")
    return seed
