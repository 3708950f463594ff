"""Errors caused by the user's input rather than by a bug in semipose.

The command-line entry points (``pose_estimation/train.py``, ``valid.py``, see
``semipose.engine.cli.run_cli``) print such an error as one ``error: ...`` line and exit with
status 2; any other exception keeps its traceback. Raise a subclass of ``UserError`` whenever the
cause is a config value, a missing or malformed input file, or a damaged checkpoint, and let the
message name the key, file or record and say what was expected.
"""

__all__ = ["UserError", "DataFileError"]


class UserError(Exception):
    """Base of the errors that a user fixes by changing the config, a file or the command line."""


class DataFileError(UserError, ValueError):
    """A file exists but does not hold what was expected (not JSON, truncated, wrong layout).

    A ``ValueError`` as well, so code that caught the plain ``ValueError`` raised before keeps
    working.
    """
