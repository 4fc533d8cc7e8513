"""This project's import-linter contract type (registered in ``.importlinter``).

``domain``: a *forbidden* contract whose sources are found by pattern, not listed: every module of
the given capability packages except its Slack face — the modules whose last name matches one of
``face_modules`` (fnmatch patterns such as ``*views``, ``*listeners``, ``modals``). A new domain
module is covered the day it is written, and a new Slack-facing one only by its name saying so.

The face modules themselves join ``forbidden_modules``: the domain may import neither Slack nor
any capability's Slack face. Every module is taken as itself (``as_packages`` off), each package
expanded to its descendants, so a capability's own views are checked like another's.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from grimp import ImportGraph
from importlinter import ContractCheck, fields
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.domain.imports import ModuleExpression


def _within(module: str, packages: list[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


class DomainContract(ForbiddenContract):
    type_name = "domain"

    face_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        packages = sorted(e.expression for e in self.source_modules)  # type: ignore[attr-defined]
        patterns = list(self.face_modules)  # type: ignore[call-overload]
        internal = [m for m in graph.modules if _within(m, packages)]
        face = {m for m in internal if any(fnmatchcase(m.rsplit(".", 1)[-1], p) for p in patterns)}
        forbidden: set[str] = set(face)
        for expression in self.forbidden_modules:  # type: ignore[attr-defined]
            name = expression.expression
            forbidden |= {m for m in graph.modules if _within(m, [name])} or {name}
        self.source_modules = {ModuleExpression(m) for m in internal if m not in face}  # type: ignore[assignment]
        self.forbidden_modules = {ModuleExpression(m) for m in forbidden}  # type: ignore[assignment]
        self.as_packages = False  # type: ignore[assignment]
        return super().check(graph, verbose)
