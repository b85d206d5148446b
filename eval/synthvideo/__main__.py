"""``python -m eval.synthvideo``: see ``eval/synthvideo/run.py``."""

from eval.synthvideo.run import main

raise SystemExit(main())
