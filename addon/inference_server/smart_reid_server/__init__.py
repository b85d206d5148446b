"""Smart ReID inference server: camera frames in, cross-camera person identities out."""

import os

# One BLAS thread: gallery searches are small matrix-vector products where a second thread
# only adds scheduling jitter (measured: p99 at 10k exemplars 65 ms with two threads vs 23 ms
# with one on a loaded 2-core box), and inference already keeps both cores busy. Set before
# numpy is imported by any entry point (smart-reid, python -m, tests); the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
