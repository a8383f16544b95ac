"""What every stage shares: validated params first, one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable

from wm_core.config import Params, load_params
from wm_core.errors import WMError


def run_stage(name: str, body: Callable[[Params], None]) -> None:
    """Load and validate params.yaml, run ``body``; expected failures exit 1 with one line."""
    try:
        params = load_params()
        body(params)
    except (WMError, FileNotFoundError, RuntimeError) as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        sys.exit(1)
