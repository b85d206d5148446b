"""Identity-quality evaluation: ReID accuracy, open-set calibration and active-visit matching.

Everything here measures the product's own embedding code (``smart_reid_server.vision.embed``) on the
shared CUHK03 crops; run it with ``eval/run`` or ``python -m eval``. Protocol and findings:
``docs/quality.md``.
"""
