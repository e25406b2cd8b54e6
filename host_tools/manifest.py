"""Read firmware/manifest.py, the list of what goes on a board, on the host.

The manifest is written for MicroPython's manifest tool (tools/manifestfile.py, the form
micropython-lib's packages use), so the same file can freeze the agent into a firmware image
(docs/firmware-image.md). Here it is executed with the functions that tool offers in its
"compile" mode, the one `mip` and mpy-cross builds use: metadata() first, then module(),
package(), include() (with options), require(); c_module() is a no-op, as there. The freeze*()
calls are image-only and not offered. require() names a micropython-lib package that the
board would have to install: deploy cannot, so it is refused with a clear error.

    files(FIRMWARE / "manifest.py")  ->  [Entry(source=Path(.../phone/agent.py),
                                               target="phone/agent.py"), ...]
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    source: Path        # the .py file on the host
    target: str         # its path on the board, relative to the root: "phone/agent.py"
    opt: int | None = None


@dataclass
class Metadata:
    description: str | None = None
    version: str | None = None
    license: str | None = None
    author: str | None = None
    given: bool = False         # metadata() was called


class Options:
    """`options` inside a manifest: the keyword arguments of the include() that read it,
    with defaults the manifest gives itself (options.defaults(...)); unknown names are None."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._defaults: dict[str, Any] = {}

    def defaults(self, **kwargs: Any) -> None:
        self._defaults = kwargs

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._kwargs.get(name, self._defaults.get(name))


@dataclass
class Manifest:
    entries: list[Entry] = field(default_factory=list)
    metadata: Metadata = field(default_factory=Metadata)
    path_vars: dict[str, str] = field(default_factory=dict)   # $(NAME) in paths: a build's
    _visited: set[Path] = field(default_factory=set)
    _dir: list[Path] = field(default_factory=list)      # the manifest being read, innermost last

    # -- what a manifest may call ---------------------------------------------------------------
    def _metadata(self, description: str | None = None, version: str | None = None,
                  license: str | None = None, author: str | None = None,
                  **_ignored: Any) -> Metadata:
        if description is version is license is author is None and not _ignored:
            return self.metadata
        if self.metadata.given:
            raise ManifestError("metadata() given twice")
        self.metadata = Metadata(description, version, license, author, given=True)
        return self.metadata

    def _need_metadata(self) -> None:
        if not self.metadata.given:
            raise ManifestError("metadata() must be the first command in a manifest file")

    def _path(self, path: str) -> Path:
        for name, value in self.path_vars.items():
            path = path.replace(f"$({name})", value)
        if "$(" in path:
            raise ManifestError(f"{path!r}: path variables such as $(PORT_DIR) exist only in a "
                                f"firmware build (make FROZEN_MANIFEST=...), not for deploy")
        return (self._dir[-1] / path).resolve()

    def _add(self, source: Path, target: str, opt: int | None) -> None:
        if source.suffix != ".py":
            raise ManifestError(f"{target}: only .py files can go on a board this way")
        if not source.is_file():
            raise ManifestError(f"{target}: no such file {source}")
        if any(e.target == target for e in self.entries):
            raise ManifestError(f"{target} is listed twice")
        self.entries.append(Entry(source, target, opt))

    def module(self, module_path: str, base_path: str = ".", opt: int | None = None) -> None:
        self._need_metadata()
        if not module_path.endswith(".py"):
            raise ManifestError(f"module({module_path!r}): module must be .py file")
        self._add(self._path(base_path) / module_path, module_path, opt)

    def package(self, package_path: str, files: list[str] | tuple[str, ...] | None = None,
                base_path: str = ".", opt: int | None = None) -> None:
        self._need_metadata()
        base = self._path(base_path)
        if files is None:   # every .py below the package, as MicroPython's tool walks it
            found = sorted(p.relative_to(base / package_path).as_posix()
                           for p in (base / package_path).rglob("*.py")
                           if "__pycache__" not in p.parts)
        else:
            found = list(files)
        for f in found:
            target = f"{package_path}/{f}"
            self._add(base / target, target, opt)

    def include(self, manifest_path: str | list[str] | tuple[str, ...], **kwargs: Any) -> None:
        if not isinstance(manifest_path, str):
            for m in manifest_path:
                self.include(m, **kwargs)
            return
        path = self._path(manifest_path)
        if path.is_dir():
            path = path / "manifest.py"
        if path in self._visited:
            return
        self._visited.add(path)
        try:
            code = path.read_text()
        except OSError as e:
            raise ManifestError(f"cannot read {path}: {e.strerror}") from None
        self._dir.append(path.parent)
        try:
            exec(compile(code, str(path), "exec"), self._globals(kwargs))
        except ManifestError as e:
            raise ManifestError(f"{path}: {e}") from None
        except Exception as e:  # a mistake in the manifest itself
            raise ManifestError(f"{path}: {type(e).__name__}: {e}") from None
        finally:
            self._dir.pop()

    def require(self, name: str, **_kwargs: Any) -> None:
        self._need_metadata()
        raise ManifestError(f"require({name!r}): micropython-lib packages are installed with "
                            f"mip or frozen into the image; deploy copies the project's own "
                            f"modules only")

    def _globals(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": self._metadata, "include": self.include, "require": self.require,
                "module": self.module, "package": self.package,
                "c_module": lambda *a, **k: None, "options": Options(**kwargs)}


def read(path: Path, path_vars: dict[str, str] | None = None, **options: Any) -> Manifest:
    """Execute a manifest (a file, or a folder holding manifest.py) and what it includes;
    `options` are those of include(), path_vars what $(NAME) in a path stands for."""
    m = Manifest(path_vars=dict(path_vars or {}), _dir=[Path(os.getcwd())])
    m.include(str(Path(path).resolve()), **options)
    return m


def files(path: Path, **options: Any) -> list[Entry]:
    """The files the manifest lists, in its order."""
    return read(path, **options).entries
