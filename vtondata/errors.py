"""Typed errors. Every message names the file (and line, for list files) and the fix.

The hierarchy follows Hugging Face datasets' verification errors: a small set of types whose
message says what to do next. The CLI prints ``str(exc)`` and exits with ``exit_code``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class VtonDataError(Exception):
    """Base class of every error vtondata raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, file: Optional[Union[str, Path]] = None,
                 line: Optional[int] = None, fix: Optional[str] = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        text = f"{where}{self.message}"
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class UnknownNameError(VtonDataError):
    """A dataset, layout, cache kind, metric, model or preset name that is not registered."""


class LayoutNotFoundError(VtonDataError):
    """The root does not hold any known layout of the dataset."""


class ListFileError(VtonDataError):
    """A malformed line in a pair / split / annotation list file."""


class UnsafePathError(ListFileError):
    """A list entry points outside the dataset root (``..`` or an absolute path); never read."""


class ImageReadError(VtonDataError):
    """An image could not be opened or decoded."""


class PoseFormatError(VtonDataError):
    """An OpenPose (or keypoint) file that cannot be interpreted."""


class DensePoseFormatError(VtonDataError):
    """A DensePose file whose values do not fit the declared (or any known) encoding."""


class ValidationFailedError(VtonDataError):
    """Strict validation found at least one fail finding; the manifest was not written."""

    exit_code = 1

    def __init__(self, message: str, findings=None, **kw):
        self.findings = list(findings or [])
        super().__init__(message, **kw)


class ManifestNotFoundError(VtonDataError):
    """No prepared manifest for a dataset name or directory."""


class WeightsMissingError(VtonDataError):
    """Pretrained weights are not in the standard cache and cannot be downloaded here."""


class MetricInputError(VtonDataError):
    """Tensors or files given to a metric have the wrong shape, dtype, value range or pairing."""


class BrowseError(VtonDataError):
    """The FiftyOne database or App could not be used (the message says why: database folder, mongod, URI)."""


class ReviewError(VtonDataError):
    """A noise-review request or decisions file that cannot be used (columns, decisions, kinds, missing scores)."""
