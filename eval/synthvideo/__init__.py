"""Scripted two-camera video built from real CUHK03 crops, replayed through the real server."""
