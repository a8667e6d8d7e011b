"""Each service installs exactly what its code imports: no import without a declared dependency, no dead dependency.

For every workspace member under services/, its src is parsed with ``ast`` (imports inside functions too,
``if TYPE_CHECKING:`` blocks excluded), every imported module is mapped to the installed distribution
that provides it, and:

(a) every third-party import is provided by a dependency the member declares, directly or through a
    workspace member it declares (taskfleet-core's dependencies are available to every service that
    declares taskfleet-core; ``taskfleet-data[embeddings]`` brings the extra's dependencies);
(b) every dependency the member declares (optional ones included) is imported somewhere in its code.

Modules are matched by their dotted name, not only the top-level one: ``opentelemetry`` is a namespace
shared by many distributions (api, sdk, exporters, instrumentations).
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SERVICES = Path(__file__).resolve().parents[2] / "services"

#: (member, imported module) -> why the import needs no declared dependency of that member.
UNDECLARED_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {
    ("taskfleet-core", "pydantic_core"): "pydantic's core, pinned exactly by pydantic",
    ("taskfleet-data", "sentence_transformers"): (
        "optional model backend (EMBEDDING_MODEL=minilm), installed by hand; the import is guarded by ImportError"
    ),
}

#: (member, declared distribution) -> why it is needed although the member's code never imports it.
UNIMPORTED_DEPENDENCIES_ALLOWED: dict[tuple[str, str], str] = {
    ("taskfleet-data", "aiosqlite"): "SQLAlchemy loads the driver from the URL scheme sqlite+aiosqlite://",
    ("taskfleet-data", "asyncpg"): "SQLAlchemy loads the driver from the URL scheme postgresql+asyncpg://",
    ("taskfleet-api", "python-multipart"): "FastAPI parses the console's form posts (Form fields) with it",
}


@dataclass
class Member:
    name: str
    root: Path
    dependencies: list[Requirement]
    optional: dict[str, list[Requirement]]
    imports: dict[str, set[Path]] = field(default_factory=dict)  # dotted candidates -> files

    @property
    def declared(self) -> list[Requirement]:
        return self.dependencies + [req for reqs in self.optional.values() for req in reqs]


def _load_members() -> dict[str, Member]:
    members = {}
    for pyproject in sorted(SERVICES.glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        member = Member(
            name=canonicalize_name(project["name"]),
            root=pyproject.parent,
            dependencies=[Requirement(dep) for dep in project.get("dependencies", [])],
            optional={
                extra: [Requirement(dep) for dep in deps]
                for extra, deps in project.get("optional-dependencies", {}).items()
            },
        )
        for path in sorted((member.root / "src").rglob("*.py")):
            for name in _imported_names(ast.parse(path.read_text(), str(path))):
                member.imports.setdefault(name, set()).add(path)
        members[member.name] = member
    return members


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST) -> Iterator[str]:
    """Absolute imports, each as its most specific module: ``from a.b import c`` is ``a.b.c`` if that is a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            node.body = []  # type-only imports need no runtime dependency (ast.walk visits children later)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in _module_index() else node.module


@cache
def _module_index() -> dict[str, set[str]]:
    """Dotted module name -> the installed distributions whose files provide it."""
    index: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or ():
            parts = file.parts
            if not parts or ".." in parts or parts[0].endswith((".dist-info", ".data")):
                continue
            stem = parts[-1].split(".", 1)[0]
            if parts[-1].endswith((".py", ".pyi")) or ".cpython-" in parts[-1] or parts[-1].endswith(".abi3.so"):
                dotted = ".".join((*parts[:-1], stem) if stem != "__init__" else parts[:-1])
                for depth in range(1, dotted.count(".") + 2):  # a package's parents are provided too
                    index.setdefault(".".join(dotted.split(".")[:depth]), set()).add(name)
    for pyproject in SERVICES.glob("*/pyproject.toml"):  # editable workspace members install only a .pth
        name = canonicalize_name(tomllib.loads(pyproject.read_text())["project"]["name"])
        for package in (pyproject.parent / "src").iterdir():
            if (package / "__init__.py").exists():
                index.setdefault(package.name, set()).add(name)
    return index


def _providers(dotted: str) -> set[str] | None:
    """The distributions providing the most specific known prefix of ``dotted``; None for the standard library."""
    top = dotted.split(".")[0]
    if top in sys.stdlib_module_names or top == "__future__":
        return None
    parts = dotted.split(".")
    index = _module_index()
    for depth in range(len(parts), 0, -1):
        if (providers := index.get(".".join(parts[:depth]))) is not None:
            return providers
    return set()


def _available(member: Member, members: dict[str, Member]) -> set[str]:
    """Distributions the member may import: its own and, through workspace members it declares, theirs."""
    available = {member.name}
    todo = [*member.declared]
    while todo:
        req = todo.pop()
        dist = canonicalize_name(req.name)
        if dist in available:
            continue
        available.add(dist)
        if dist in members:
            todo.extend(members[dist].dependencies)
            for extra in req.extras:
                todo.extend(members[dist].optional.get(extra, []))
    return available


MEMBERS = _load_members()


def _third_party_imports(member: Member) -> dict[str, set[str]]:
    """Imported module -> the distributions providing it, standard library left out."""
    return {dotted: providers for dotted in member.imports if (providers := _providers(dotted)) is not None}


@pytest.mark.parametrize("member", sorted(MEMBERS), ids=str)
def test_every_import_is_declared(member: str) -> None:
    m = MEMBERS[member]
    available = _available(m, MEMBERS)
    missing = []
    for dotted, providers in sorted(_third_party_imports(m).items()):
        top = dotted.split(".")[0]
        if (member, top) in UNDECLARED_IMPORTS_ALLOWED or providers & available:
            continue
        files = sorted(str(p.relative_to(m.root)) for p in m.imports[dotted])
        missing.append(f"{dotted} (provided by {sorted(providers) or 'nothing installed'}; in {files})")
    assert not missing, f"{member} imports what it does not declare:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("member", sorted(MEMBERS), ids=str)
def test_every_dependency_is_imported(member: str) -> None:
    m = MEMBERS[member]
    imported = set().union(*_third_party_imports(m).values()) if m.imports else set()
    dead = [
        req.name
        for req in m.declared
        if canonicalize_name(req.name) not in imported
        and (member, canonicalize_name(req.name)) not in UNIMPORTED_DEPENDENCIES_ALLOWED
    ]
    assert not dead, f"{member} declares dependencies its code never imports: {dead}"


def test_the_exceptions_are_still_needed() -> None:
    """An exception whose member imports the module after all (or dropped the dependency) is removed."""
    stale = []
    for member, dist in UNIMPORTED_DEPENDENCIES_ALLOWED:
        m = MEMBERS.get(member)
        declared = {canonicalize_name(req.name) for req in m.declared} if m else set()
        imported = set().union(*_third_party_imports(m).values()) if m and m.imports else set()
        if dist not in declared or dist in imported:
            stale.append((member, dist))
    for member, module in UNDECLARED_IMPORTS_ALLOWED:
        m = MEMBERS.get(member)
        if m is None or not any(name.split(".")[0] == module for name in m.imports):
            stale.append((member, module))
    assert not stale, f"exceptions no longer needed: {stale}"
