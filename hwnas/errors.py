"""One exception hierarchy for hwnas.

Every error raised at a user-facing boundary is an :class:`HwnasError` whose
message says what was wrong *and* how to fix it. The CLI prints the message as
one line and exits non-zero; library users can catch the specific subclass.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HwnasError(Exception):
    """Base class of every error hwnas raises on purpose."""


class ConfigError(HwnasError, ValueError):
    """A value given by the user (arch, option, file) is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup failed (space, device, model ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ArchError(ConfigError):
    """An ArchConfig does not fit its search space."""


class CheckpointError(HwnasError):
    """A checkpoint file cannot be loaded into the requested network."""


class RuntimeMissingError(HwnasError, ImportError):
    """A runtime backend's library is not installed (names the pip extra)."""


class DeviceError(HwnasError):
    """A backend failed to load or run a model."""


class ProfileError(HwnasError):
    """A device-profile directory is missing, foreign, corrupt or locked."""


class NoFittedModelError(ProfileError):
    """A profile stores no fitted model for the requested space and target (fit one, or let the caller)."""


class NotFittedError(HwnasError, ValueError):
    """A model was used before ``fit`` (scikit-learn convention)."""


class DataError(HwnasError):
    """Training or evaluation data is missing or malformed."""


class BudgetError(HwnasError):
    """A budget that no candidate can meet; the message gives the reachable range."""


class BundleError(HwnasError):
    """A deployment bundle is incomplete or was modified after it was written."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""
