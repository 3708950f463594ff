"""The study runner's old entry point: ``python bench/collapse_study.py ARGS`` is
``python -m semipose.tools.study ARGS`` (``lib/semipose/tools/study``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from semipose.tools.study import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
