"""Hand-checked identity ground truth for real street video (see ``eval/realvideo/LABELS.md``)."""
