"""``python -m asyncwasm`` is the ``asyncwasm`` command."""

from .cli import main

raise SystemExit(main())
