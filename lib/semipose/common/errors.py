"""Errors caused by the user's input rather than by a bug in semipose.

The command-line entry points (``pose_estimation/train.py``, ``valid.py``, see
``run_cli`` below) print such an error as one ``error: ...`` line and exit with
status 2; any other exception keeps its traceback. Raise a subclass of ``UserError`` whenever the
cause is a config value, a missing or malformed input file, or a damaged checkpoint, and let the
message name the key, file or record and say what was expected.
"""

import os
import sys
import traceback

__all__ = ["UserError", "DataFileError", "RunStopped", "run_cli"]

EXIT_USER_ERROR = 2
EXIT_NAN_STOP = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


class UserError(Exception):
    """Base of the errors that a user fixes by changing the config, a file or the command line."""


class WriteFailed(UserError, OSError):
    """A file could not be written (disk full, no permission, a read-only filesystem...): the
    message names the file and the cause; the previous file of that name is intact and no
    temporary is left (``semipose.common.io.atomic_write``). Exit status 2 under ``run_cli``."""


class DataFileError(UserError, ValueError):
    """A file exists but does not hold what was expected (not JSON, truncated, wrong layout).

    A ``ValueError`` as well, so code that caught the plain ``ValueError`` raised before keeps
    working.
    """


class RunStopped(Exception):
    """A run stopped on a signal after saving its state; the exit status is 128 + ``signum``
    (143 for SIGTERM, 138 for SIGUSR1), as a shell reports a process ended by that signal."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = int(signum)


def _wants_traceback(argv):
    if os.environ.get("SEMIPOSE_DEBUG", "") not in ("", "0"):
        return True
    return "--traceback" in (sys.argv[1:] if argv is None else argv)


def _one_line(err):
    text = " ".join(str(err).split())
    return text or type(err).__name__


def run_cli(main, argv=None):
    """Runs ``main(argv)`` and turns the expected errors into one line on stderr.

    Args:
        main: the entry point, called with ``argv``.
        argv: command-line tokens; None reads ``sys.argv[1:]``.

    Returns:
        The exit status: ``main``'s return value (0 for None); 2 for a ``UserError`` or a missing
        file (config, data, checkpoint), 1 for a ``FloatingPointError`` (the NaN/Inf stop; the last
        finite checkpoint is kept), 130 for Ctrl-C, 128 + the signal for a run stopped by
        SIGTERM / SIGUSR1 after saving (``RunStopped``: 143 / 138). Other exceptions propagate
        with their traceback, as do all of them with ``--traceback`` or ``SEMIPOSE_DEBUG=1``.
    """
    debug = _wants_traceback(argv)
    try:
        status = main(argv)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("error: interrupted (Ctrl-C); saved checkpoints are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RunStopped as stop:
        print(f"stopped: {_one_line(stop)}", file=sys.stderr)
        return 128 + stop.signum
    except (UserError, FileNotFoundError, FloatingPointError) as err:
        if debug:
            raise
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_NAN_STOP if isinstance(err, FloatingPointError) else EXIT_USER_ERROR
    return 0 if status is None else status
