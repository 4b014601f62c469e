"""Expected failures and the `semrec` exit code of each: the CLI prints one line saying what to do.

    1 refused              a check refused the result (Refused); nothing already written changed
    2 usage                bad option, filter, request bound or params.yaml value (argparse, FilterError,
                           LimitError, UsageError)
    3 not found            nothing published, no such snapshot, no such item or file
    4 verification failed  a manifest or a file does not match its checksum, is unsafe or does not load;
                           LATEST names no snapshot
    5 storage              the store cannot be reached, or refuses our credentials

Anything else is a bug: one line too, exit 1, and its traceback at `--log-level debug`.
"""

from __future__ import annotations

from serving.filters import FilterError
from serving.limits import LimitError
from serving.manifest import ManifestError

UNEXPECTED, USAGE, NOT_FOUND, VERIFICATION_FAILED, STORAGE = 1, 2, 3, 4, 5
REFUSED = UNEXPECTED  # a refusal and a bug both exit 1; the hint tells them apart
REFUSED_HINT = "nothing already written was changed"

_HINTS = {
    UNEXPECTED: "unexpected: run with --log-level debug for the traceback",
    USAGE: "fix the option or params.yaml key named (`semrec <command> --help` lists the options)",
    NOT_FOUND: "check --root, --catalog and the id, or publish first (`semrec publish`)",
    VERIFICATION_FAILED: "republish, or roll back (`semrec publish rollback --to <snapshot_id>`)",
    STORAGE: "check --root, AWS_ENDPOINT_URL and the AWS credentials (AWS_ACCESS_KEY_ID and "
             "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)",
}


class UsageError(ValueError):
    """A bad option or params.yaml value; the message names it (e.g. the params key)."""


class Refused(RuntimeError):
    """A check refused the result before anything was written (e.g. ingest keeping almost no rows)."""


class NotFound(LookupError):
    """Nothing is published under a catalog, or a snapshot or item does not exist."""

    def __str__(self) -> str:  # LookupError's str() would quote the message like a KeyError's
        return str(self.args[0]) if self.args else ""


def exit_code(err: BaseException) -> int | None:
    """The exit code of an expected failure; None for anything else (a bug)."""
    if isinstance(err, (FilterError, LimitError, UsageError)):
        return USAGE
    if isinstance(err, Refused):
        return REFUSED
    if isinstance(err, (NotFound, FileNotFoundError)):
        return NOT_FOUND
    if isinstance(err, ManifestError):
        return VERIFICATION_FAILED
    if isinstance(err, OSError) or any(cls.__module__.split(".")[0] in {"botocore", "aiobotocore"}
                                       for cls in type(err).__mro__):
        return STORAGE  # PermissionError, ConnectionError, timeouts; botocore's NoCredentialsError, ...
    return None


def one_line(command: str, err: BaseException, code: int) -> str:
    """`semrec <command>: <what went wrong>; <what to do>`, on a single line (a bug also names its type)."""
    what = " ".join(str(err).split())
    refused = isinstance(err, Refused)
    what = f"{type(err).__name__}: {what}" if code == UNEXPECTED and not refused or not what else what
    return f"semrec {command}: {what}; {REFUSED_HINT if refused else _HINTS[code]}"
