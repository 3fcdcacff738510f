"""The one error hierarchy of larkps.

Every error a user can see derives from :class:`LarkpsError`. The CLI maps
:class:`UsageError` (and its subclass :class:`ConfigError`) to exit code 2 and
every other :class:`LarkpsError` to exit code 1.
"""

from __future__ import annotations


class LarkpsError(Exception):
    """Root of every larkps error; its message is one clear line."""

    exit_code = 1


class UsageError(LarkpsError):
    """A command-line argument is malformed or missing."""

    exit_code = 2


class FieldError(UsageError):
    """One field of a stage's input has a value the stage refuses.

    ``field`` is the name the stage knows it by (``mtu``, ``category``); a command
    layer that took the value from a flag re-raises it naming the flag
    (:meth:`for_flag`), so stages never need to know the command line.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")

    def for_flag(self, flag: str) -> UsageError:
        """The same problem, about the command-line flag the value came from."""
        return UsageError(f"{flag}: {self.problem}")


class ConfigError(UsageError):
    """A configuration file is unreadable or invalid.

    The message names the file, the key path and what was expected.
    """

    def __init__(self, source: str, key_path: str, problem: str) -> None:
        self.source = source
        self.key_path = key_path
        self.problem = problem
        where = f"{source}: {key_path}" if key_path else source
        super().__init__(f"{where}: {problem}")


class ArchiveError(LarkpsError):
    """A measurement archive could not be used.

    When no archive of a cycle answered, the error raised is the first one, and
    ``also_failed`` holds the others (so the run report names every archive).
    """

    def __init__(self, archive: str, problem: str) -> None:
        self.archive = archive
        self.problem = problem
        self.also_failed: tuple[ArchiveError, ...] = ()
        super().__init__(f"archive {archive}: {problem}")


class ArchiveUnavailable(ArchiveError):
    """The archive could not be reached or answered with an HTTP error."""


class ArchiveDeadline(ArchiveUnavailable):
    """The cycle's deadline passed before the archive answered."""


class ArchiveFormatError(ArchiveError):
    """The archive answered with something that is not the documented format."""


class PublishError(LarkpsError):
    """Ads could not be written or sent."""


class StateError(LarkpsError):
    """The local state store could not be read or written."""
