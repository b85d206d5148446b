"""Ways frames get into the pipeline besides HTTP upload.

``mqtt``: frames published to ``<base>/ingest/<camera>`` on the server's own broker.
``sources``/``frigate``/``stream``/...: camera systems that push frames by themselves.
All of them hand ``Frame`` objects to the pipeline's non-blocking ``offer``.
"""
