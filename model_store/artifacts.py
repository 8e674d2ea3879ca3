"""Installing rebuilt artefacts into the model store, and telling when a rebuild changed nothing.

Rebuilding the same models must leave the committed artefacts alone, but three things differ on
every export even when nothing else does: the archive's "createdOn", TorchScript's random
serialization id (and its order of constants), and the SavedModel fingerprint's random UUID. So a
new artefact replaces the committed one only when it differs in anything else. ONNX graphs and
Triton's config are the same bytes every time and are compared as such.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MANIFEST = "MAR-INF/MANIFEST.json"


# TorchScript is what TorchServe's BaseHandler loads (``torch.jit.load``); this torch release marks
# the torch.jit API deprecated, which is all this silences.
@contextmanager
def torchscript_deprecation_silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
        )
        yield


def install(built: Path, target: Path, same: Callable[[Path, Path], bool], store: Path) -> Path:
    """Move ``built`` to ``target`` unless ``same(built, target)``; say which, relative to
    ``store``."""
    if target.exists() and same(built, target):
        print(f"  {target.relative_to(store)}: unchanged, kept")
        return target
    if target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(built, target)
    print(f"  {target.relative_to(store)}: written")
    return target


def same_saved_model(built: Path, committed: Path) -> bool:
    def files(root: Path) -> dict[str, Path]:
        return {
            path.relative_to(root).as_posix(): path
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.name != "fingerprint.pb"
        }

    new, old = files(built), files(committed)
    return new.keys() == old.keys() and all(
        new[name].read_bytes() == old[name].read_bytes() for name in new
    )


def same_mar(built: Path, committed: Path) -> bool:
    try:
        new, old = _read_mar(built), _read_mar(committed)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    new_manifest, old_manifest = new.pop(MANIFEST), old.pop(MANIFEST)
    serialized = new_manifest["model"]["serializedFile"]
    new_manifest.pop("createdOn", None)
    old_manifest.pop("createdOn", None)
    if new_manifest != old_manifest or new.keys() != old.keys():
        return False
    new_model, old_model = new.pop(serialized), old.pop(serialized)
    return new == old and _same_torchscript(new_model, old_model)


def _read_mar(path: Path) -> dict[str, Any]:
    """Every member's bytes, except the manifest, which is parsed."""
    with zipfile.ZipFile(path) as archive:
        members: dict[str, Any] = {name: archive.read(name) for name in archive.namelist()}
    members[MANIFEST] = json.loads(members[MANIFEST])
    return members


def _same_torchscript(new: bytes, old: bytes) -> bool:
    """Same parameters, bit for bit, and the same TorchScript code in every submodule."""
    import torch

    new_module, old_module = _load_torchscript(new), _load_torchscript(old)
    new_state, old_state = new_module.state_dict(), old_module.state_dict()
    if new_state.keys() != old_state.keys():
        return False
    if not all(
        new_state[name].dtype == old_state[name].dtype
        and torch.equal(new_state[name], old_state[name])
        for name in new_state
    ):
        return False

    def code(module: Any) -> dict[str, str]:
        return {name: str(sub.code) for name, sub in module.named_modules()}

    return code(new_module) == code(old_module)


def _load_torchscript(serialized: bytes) -> Any:
    import torch

    with torchscript_deprecation_silenced():
        module = torch.jit.load(io.BytesIO(serialized), map_location="cpu")  # type: ignore[no-untyped-call]
    module.eval()
    return module


def torchscript_from_mar(path: Path) -> Any:
    """The TorchScript module inside a TorchServe archive, as TorchServe will load it."""
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(MANIFEST))
        return _load_torchscript(archive.read(manifest["model"]["serializedFile"]))


def same_bytes(built: Path, committed: Path) -> bool:
    """Files, or directories of files, with the same names and contents."""

    def files(root: Path) -> dict[str, bytes]:
        if root.is_file():
            return {"": root.read_bytes()}
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }

    return committed.exists() and files(built) == files(committed)
