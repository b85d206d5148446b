"""Running Smart ReID as several processes on several hosts (docs/server.md "Scaling out")."""
