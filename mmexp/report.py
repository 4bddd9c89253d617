"""CLI entry point: ``python -m mmexp.report`` / ``mmexp-report``; the work is in ``mmexp.reporting``."""

from __future__ import annotations

import sys

from mmexp.reporting.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
