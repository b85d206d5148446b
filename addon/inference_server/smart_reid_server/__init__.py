"""Smart ReID inference server: camera frames in, cross-camera person identities out."""

__version__ = "0.1.0"
