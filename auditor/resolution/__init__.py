"""Resolution reconstruction: which upstream exchanges a resolver made for each client answer,
and which of them explains a failed one."""

from auditor.resolution.linker import ResolutionLinker
from auditor.resolution.model import Cause, EdeCheck, Resolution, UpstreamAnswer

__all__ = ["Cause", "EdeCheck", "Resolution", "ResolutionLinker", "UpstreamAnswer"]
