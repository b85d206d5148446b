"""serve stage modules of the Smart ReID server."""
