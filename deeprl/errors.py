"""One exception type for user mistakes: the command line prints its message as one sentence and exits 2."""

from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user (wrong id, missing file, corrupt model...). The message is shown as is."""


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The choices that look most like `word`, for 'did you mean' sentences."""
    import difflib

    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.4)
    if not hits:  # a prefix often says more than a spelling distance (e.g. "Taxi" -> "Taxi-v3")
        hits = [c for c in lowered if c.startswith(word.lower()[:4])][:n]
    return [lowered[h] for h in hits]
