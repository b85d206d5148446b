"""``python -m smart_reid_server ...`` is the same as the ``smart-reid`` command.

BLAS threading defaults are set in the package's ``__init__``, which runs before this.
"""

from .cli import main

raise SystemExit(main())
