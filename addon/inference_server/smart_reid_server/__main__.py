"""``python -m smart_reid_server ...`` is the same as the ``smart-reid`` command."""

from .cli import main

raise SystemExit(main())
