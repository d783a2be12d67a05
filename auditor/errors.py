"""The package's exception hierarchy: our own failures and unusable user input, never traffic."""

from __future__ import annotations


class AuditorError(Exception):
    """Base class of every exception raised on purpose by dnssec-auditor."""


class ProcessLost(AuditorError):
    """A process the audit relied on ended before the audit finished (``--jobs 2``'s
    reporting process, a Dask cluster's workers, killed or crashed): the outputs are
    incomplete; exit status 70."""


class CaptureError(AuditorError):
    """A capture file or stream cannot be read (missing, unreadable, not a capture, corrupt).

    The message names the file and, where known, the byte offset of the problem.
    """

    def __init__(self, source: str, problem: str, offset: int | None = None) -> None:
        self.source = source
        self.problem = problem
        self.offset = offset
        where = f" at byte offset {offset}" if offset is not None else ""
        super().__init__(f"{source}{where}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str, int | None]]:
        # Raised in a worker process, it crosses to the client pickled: by the arguments
        # ``__init__`` takes, not the one message ``Exception`` keeps (which it cannot take).
        return type(self), (self.source, self.problem, self.offset)


class TrustAnchorError(AuditorError):
    """A trust anchor file is malformed; the message names the file and line."""

    def __init__(self, source: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.problem = problem
        self.line = line
        where = f":{line}" if line is not None else ""
        super().__init__(f"{source}{where}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str, int | None]]:
        return type(self), (self.source, self.problem, self.line)  # as ``CaptureError``'s


class ReportInputError(AuditorError):
    """A saved output file read back (``report DIR``) is unusable: not JSON, cut short, or a
    record without the fields the reports need; the message names the file and line."""

    def __init__(self, source: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.problem = problem
        self.line = line
        where = f":{line}" if line is not None else ""
        super().__init__(f"{source}{where}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str, int | None]]:
        return type(self), (self.source, self.problem, self.line)  # as ``CaptureError``'s


class KeyCacheError(AuditorError):
    """The SQLite key cache cannot be opened, read or written."""


class ConfigError(AuditorError):
    """A command-line option or configuration value is invalid."""
