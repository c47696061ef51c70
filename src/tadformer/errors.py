"""How the CLI turns errors into messages: a clear line and an exit code, not a traceback.

Library code raises specific ``ValueError``/``OSError`` subclasses whose messages name the file, key
or video and say what was expected. Set ``TADFORMER_DEBUG=1`` to see the full traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def run_cli_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; print expected errors as one ``tadformer: error:`` line."""
    from tadformer.engine.train import TrainingDiverged, TrainingInterrupted

    try:
        return int(func(args) or 0)
    except TrainingInterrupted as exc:
        print(f"tadformer: {exc} (checkpoint: {exc.checkpoint})", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("tadformer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingDiverged as exc:
        _report(exc)
        return 1
    except (ValueError, OSError, KeyError, NotImplementedError) as exc:
        _report(exc)
        return EXIT_USAGE if not isinstance(exc, OSError) else 1


def _report(exc: BaseException) -> None:
    if os.environ.get("TADFORMER_DEBUG"):
        traceback.print_exc()
    msg = str(exc) if not isinstance(exc, KeyError) else f"missing key {exc}"
    print(f"tadformer: error: {strip_worker_traceback(msg, exc)}", file=sys.stderr)


_WORKER_TRACEBACK = "\nOriginal Traceback (most recent call last):\n"


def strip_worker_traceback(msg: str, exc: BaseException) -> str:
    """The original message of an error re-raised by a DataLoader worker, without the worker traceback.

    With ``loader.num_workers > 0`` torch re-raises a worker's exception as the same type whose
    message is ``"Caught X in DataLoader worker process N.\nOriginal Traceback ...\nmodule.X: msg"``.
    """
    if _WORKER_TRACEBACK not in msg:
        return msg
    cls = type(exc)
    for prefix in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
        start = msg.rfind("\n" + prefix)
        if start >= 0:
            return msg[start + 1 + len(prefix):].strip() + " (raised in a DataLoader worker)"
    return msg
