"""Errors that carry a message meant for the user, not a traceback.

Everything a user can get wrong (a bad file, an unknown preset, an impossible
configuration) raises a subclass of :class:`AecoreError`; the CLI prints its
message on one line and the dashboard shows it on the page.
"""


class AecoreError(Exception):
    """A mistake the user can fix; ``str(err)`` is the whole explanation."""


class ConfigError(AecoreError, ValueError):
    """An impossible or out-of-range configuration."""


class DataError(AecoreError, ValueError):
    """A dataset that is missing, unreadable or malformed."""


class StoreError(AecoreError):
    """A model name, folder or file in the store that cannot be used."""
