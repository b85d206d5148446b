"""Scale-out: inference workers and one matcher joined by Redis Streams (docs/server.md
"Scaling out"). ``cluster.role: all`` (the default) uses none of this."""
