"""``python -m bench``: the side-by-side comparison table (see ``bench/compare.py``)."""

from .compare import main

raise SystemExit(main())
