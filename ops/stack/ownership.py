"""Hand the stack's own folders to the unprivileged service user, safely under root.

A recursive chown run by root is a classic way to be tricked into changing the owner of a file
elsewhere: a symlink planted inside the tree (`data/x -> /etc/shadow`), or a folder swapped for a
symlink while the walk runs. So the walk (1) refuses a root whose real path is not inside one of
the stack's own folders (`stack.state_dir` / `stack.cache_dir`), (2) never follows a symlink
(`os.fwalk`, which opens each folder relative to its parent's descriptor with O_NOFOLLOW, so a
folder swapped for a link mid-walk is not entered), and (3) changes each entry through its
parent's descriptor with `follow_symlinks=False`, so a link has its own owner changed, never its
target's. Hand-rolled because shutil.chown has no recursive, symlink-safe mode.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from vidsearch.ops.stack.errors import StackError


def inside(path: Path, folders: Sequence[Path]) -> bool:
    """Whether `path`'s real location lies in (or is) one of `folders`' real locations."""
    real = Path(os.path.realpath(path))
    return any(real == (f := Path(os.path.realpath(folder))) or f in real.parents for folder in folders)


def check_root(service: str, root: Path, allowed: Sequence[Path]) -> None:
    if root.is_symlink() or not inside(root, allowed):
        raise StackError(service, f"refusing to chown {root}: it is a symlink or lies outside the stack's folders "
                                  f"({', '.join(map(str, allowed))})")


def chown_tree(service: str, root: Path, uid: int, gid: int, allowed: Sequence[Path]) -> list[Path]:
    """chown `root` and everything under it to uid:gid without following symlinks; returns the
    paths changed (links included: their own owner, not their target's)."""
    check_root(service, root, allowed)
    os.chown(root, uid, gid, follow_symlinks=False)
    touched = [root]
    for folder, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in [*dirs, *files]:  # fwalk lists symlinks to folders under `dirs`, never entering them
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            touched.append(Path(folder) / name)
    return touched
