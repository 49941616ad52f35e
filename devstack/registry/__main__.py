"""Entry point: ``python -m devstack.registry --help``."""

from __future__ import annotations

from devstack.registry.server import main

raise SystemExit(main())
