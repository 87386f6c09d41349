"""Inspect's own retry and time-out settings for ``ue run --harness inspect`` and the retries they cost.

``--model-args`` entries that are Inspect generation settings rather than the provider's arguments go to
``inspect_ai.eval`` as such (Inspect's ``GenerateConfig``): ``max_retries`` (default: retry until ``timeout``),
``timeout`` (seconds for a request with all its retries), ``attempt_timeout`` (seconds for one attempt, after which
it is abandoned and retried) and ``max_connections`` (concurrent requests). Inspect retries a 429, a 5xx, a
time-out and a dropped connection with exponential back-off (docs/served_models.md); the retries it made are
counted from the log's model calls into ``usage.json``."""

from __future__ import annotations

from typing import Any

GENERATE_ARGS = {"max_retries": int, "timeout": int, "attempt_timeout": int, "max_connections": int}


def split_generate_args(args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the provider's model arguments, Inspect's generation settings) of ``--model-args``."""
    from ue_metrics.errors import UserError

    model_args, generate = {}, {}
    for key, value in args.items():
        if key not in GENERATE_ARGS:
            model_args[key] = value
            continue
        try:
            generate[key] = GENERATE_ARGS[key](value)
        except (TypeError, ValueError):
            raise UserError(f"--model-args {key}={value!r}: Inspect's {key} is a whole number (seconds or a count)") from None
        if generate[key] < (0 if key == "max_retries" else 1):
            raise UserError(f"--model-args {key}={value!r}: must be {'0 or more' if key == 'max_retries' else 'at least 1'}")
    return model_args, generate


def retries_so_far() -> int:
    """Inspect's process-wide count of HTTP retries (every retry it and the OpenAI client make, however classified)."""
    try:
        from inspect_ai._util.retry import http_retries_count
    except ImportError:  # an Inspect without the counter: the log's model calls are counted instead
        return -1
    return int(http_retries_count())


def http_retries(log: Any) -> int:
    """The requests Inspect asked again (a 429, a 5xx, a time-out or a dropped connection: its own retries and the
    OpenAI client's), summed over the log's model calls (``ModelEvent.retries``)."""
    total = 0
    for sample in getattr(log, "samples", None) or []:
        for event in getattr(sample, "events", None) or []:
            if getattr(event, "event", None) == "model":
                total += int(getattr(event, "retries", None) or 0)
    return total
