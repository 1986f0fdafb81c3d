"""The root of Parafoudre's own exceptions, so the CLI can catch them and print one line."""


class ParafoudreError(Exception):
    """A Parafoudre error: the message says what went wrong and, where it can, how to fix it."""
