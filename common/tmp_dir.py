"""CoW's TmpDir: a scratch directory under the project, created when first asked for, not at import."""

from __future__ import annotations

import os

from config import get_root


class TmpDir:
    def __init__(self) -> None:
        self.tmp_file_path = os.path.join(get_root(), "tmp")

    def path(self) -> str:
        os.makedirs(self.tmp_file_path, mode=0o700, exist_ok=True)
        return self.tmp_file_path + os.sep
