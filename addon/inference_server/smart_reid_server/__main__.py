"""``python -m smart_reid_server ...`` is the same as the ``smart-reid`` command."""

import os

# OpenBLAS reads this once, when numpy is first imported, so it is set before anything else
# loads. One thread: the detector and ReID runtimes already keep both cores busy, and OpenBLAS
# threads spin-waiting for work would compete with them; on this 2-core box a second thread
# made the gallery's 10k-exemplar product slower (0.53 vs 1.15 ms p50) and only sometimes
# faster at 100k, where the int8 scan (onnxruntime, single-threaded) now does the work anyway.
# Setting OPENBLAS_NUM_THREADS in the environment still wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .cli import main

raise SystemExit(main())
