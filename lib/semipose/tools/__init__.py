"""Command-line tools that work on data and configs without training
(``python -m semipose.tools.<name>``)."""
