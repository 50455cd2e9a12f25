"""Validation findings: typed records collected by the doctor, never printed ad hoc.

A :class:`Finding` is ``good`` (a check passed, with a count), ``warn`` (suspicious but usable) or
``fail`` (the row is wrong). ``strict`` mode refuses to write a manifest with any fail; ``lenient``
mode drops the failing rows and writes the findings to a report file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

GOOD, WARN, FAIL = "good", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    message: str
    file: Optional[str] = None
    line: Optional[int] = None
    fix: Optional[str] = None
    #: asset ids / sample ids / tuple ids this finding invalidates (lenient mode drops them)
    drops: tuple = ()

    def where(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def render(self) -> str:
        where = self.where()
        text = f"{where}: {self.message}" if where else self.message
        if self.fix and self.severity != GOOD:
            text += f" (fix: {self.fix})"
        return text

    def row(self) -> dict:
        d = asdict(self)
        d.pop("drops")
        return d


@dataclass
class Report:
    """All findings of one validation run plus the checks that passed."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, severity: str, code: str, message: str, *, file=None, line=None, fix=None,
            drops: Iterable[str] = ()) -> Finding:
        f = Finding(severity, code, message, str(file) if file is not None else None, line, fix, tuple(drops))
        self.findings.append(f)
        return f

    def good(self, code: str, message: str) -> None:
        self.add(GOOD, code, message)

    def warn(self, code: str, message: str, **kw) -> Finding:
        return self.add(WARN, code, message, **kw)

    def fail(self, code: str, message: str, **kw) -> Finding:
        return self.add(FAIL, code, message, **kw)

    def extend(self, other: "Report") -> None:
        self.findings.extend(other.findings)

    @property
    def fails(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == FAIL]

    @property
    def warns(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARN]

    @property
    def n_fail(self) -> int:
        return len(self.fails)

    @property
    def n_warn(self) -> int:
        return len(self.warns)

    def dropped_ids(self) -> set[str]:
        out: set[str] = set()
        for f in self.fails:
            out.update(f.drops)
        return out

    def summary(self) -> dict:
        c = Counter(f.severity for f in self.findings)
        codes = Counter(f.code for f in self.findings if f.severity != GOOD)
        return {"good": c.get(GOOD, 0), "warn": c.get(WARN, 0), "fail": c.get(FAIL, 0),
                "codes": dict(sorted(codes.items()))}
