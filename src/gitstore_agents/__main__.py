"""``python -m gitstore_agents``."""

from .cli import main

raise SystemExit(main())
