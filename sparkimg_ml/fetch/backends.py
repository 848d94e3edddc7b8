"""Which package each storage protocol needs, and whether this Python has it.

``s3://`` is read by s3fs, ``gs://`` by gcsfs, ``abfs://`` by adlfs, each through
fsspec; each comes with its own extra (``sparkimg_ml[s3]``, ``[gcs]``,
``[azure]``, ``[hdfs]``; ``[cloud]`` is all of them). A row whose back-end is
not installed fails with the reason ``missing_dependency``, naming the package and
the extra to install, and :func:`missing_backends` finds such rows in a sample of
sources before a job starts (the featurizer checks the first rows on the driver
when ``handleInvalid="error"``).

This module imports neither pyspark nor pandas; back-ends are imported only when
a source needs them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import SourceError


@dataclass(frozen=True)
class Backend:
    """The package that reads a storage protocol and the extra that installs it."""

    package: str
    module: str
    extra: str


_S3 = Backend("s3fs", "s3fs", "s3")
_GCS = Backend("gcsfs", "gcsfs", "gcs")
_AZURE = Backend("adlfs", "adlfs", "azure")
#: ``hdfs://`` goes through pyarrow's HadoopFileSystem (pyarrow is a core dependency; it also needs
#: Hadoop's libhdfs and a JVM, which pip cannot install); ``webhdfs://`` through requests.
_HDFS = Backend("fsspec", "fsspec", "hdfs")
_WEBHDFS = Backend("requests", "requests", "hdfs")

#: Protocol -> the package that reads it (through fsspec) and the extra that installs both.
BACKENDS: dict[str, Backend] = {
    "s3": _S3, "s3a": _S3,
    "gs": _GCS, "gcs": _GCS,
    "abfs": _AZURE, "abfss": _AZURE, "az": _AZURE, "adl": _AZURE,
    "hdfs": _HDFS,
    "webhdfs": _WEBHDFS,
}


#: How many first rows the featurizer checks on the driver with ``handleInvalid="error"``.
BACKEND_CHECK_ROWS = 20


#: Protocols a back-end reads but fsspec's registry does not list: the registered name of the same class
#: (adlfs reads abfss:// URLs, but fsspec knows only abfs and az).
FSSPEC_NAMES: dict[str, str] = {"abfss": "abfs"}


def missing_message(protocol: str, cause: BaseException | None = None) -> str:
    """The ``missing_dependency`` detail for ``protocol``.

    Examples
    --------
    >>> missing_message("gs")
    "gs:// needs gcsfs (pip install 'sparkimg_ml[gcs]')"
    >>> missing_message("memory", ImportError("No module named 'fsspec'", name="fsspec"))
    'memory:// needs fsspec (pip install fsspec)'
    """
    backend = BACKENDS.get(protocol)
    if backend is not None:
        return f"{protocol}:// needs {backend.package} (pip install 'sparkimg_ml[{backend.extra}]')"
    if getattr(cause, "name", None) == "fsspec":
        return f"{protocol}:// needs fsspec (pip install fsspec)"
    return f"{protocol}:// needs a package that is not installed ({cause})"


def missing_dependency(protocol: str, cause: BaseException | None = None) -> SourceError:
    """The per-row error of a storage URL whose back-end cannot be imported."""
    return SourceError("missing_dependency", missing_message(protocol, cause))


def filesystem_class(protocol: str) -> Any:
    """fsspec's file-system class for ``protocol``, importing its back-end.

    Raises :class:`SourceError` ``missing_dependency`` when fsspec or the back-end
    cannot be imported and ``unsupported_scheme`` when fsspec knows no such protocol.
    """
    try:
        import fsspec
    except ImportError as exc:
        raise missing_dependency(protocol, exc) from None
    try:
        implementation: Any = fsspec.get_filesystem_class(FSSPEC_NAMES.get(protocol, protocol))
    except ImportError as exc:
        raise missing_dependency(protocol, exc) from None
    except ValueError:
        raise SourceError("unsupported_scheme", f"{protocol}: is not an fsspec protocol") from None
    return implementation


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None  # None too when sys.modules blocks it
    except ValueError:  # imported already, without a spec
        return True


def absent_backends(storage_protocols: Sequence[str]) -> list[str]:
    """The protocols whose package (or fsspec) is not installed here; cheap: finds modules without importing.

    Examples
    --------
    >>> absent_backends(["nosuchprotocol"]) == ([] if importlib.util.find_spec("fsspec") else ["nosuchprotocol"])
    True
    """
    fsspec_found = _found("fsspec")
    absent = []
    for protocol in storage_protocols:
        backend = BACKENDS.get(protocol)
        if not fsspec_found or (backend is not None and not _found(backend.module)):
            absent.append(protocol)
    return absent


def _protocol(source: object, storage_protocols: Sequence[str]) -> str | None:
    if not isinstance(source, str) or "://" not in source:
        return None
    try:
        scheme = urlsplit(source.strip()).scheme.lower()
    except ValueError:
        return None
    return scheme if scheme in storage_protocols else None


def _missing(sources: Iterable[object], storage_protocols: Sequence[str] | None) -> dict[str, tuple[object, str]]:
    """``{protocol: (first source, reason)}`` for each protocol whose back-end fails to import."""
    if storage_protocols is None:
        from .options import DEFAULT_STORAGE_PROTOCOLS

        storage_protocols = DEFAULT_STORAGE_PROTOCOLS
    first: dict[str, object] = {}
    for source in sources:
        protocol = _protocol(source, storage_protocols)
        if protocol is not None:
            first.setdefault(protocol, source)
    missing = {}
    for protocol, source in first.items():
        try:
            filesystem_class(protocol)
        except SourceError as error:
            if error.code == "missing_dependency":
                missing[protocol] = (source, error.reason)
    return missing


def missing_backends(sources: Iterable[object], storage_protocols: Sequence[str] | None = None) -> list[str]:
    """One ``missing_dependency`` reason per storage protocol in ``sources`` that cannot be read here.

    Parameters
    ----------
    sources : iterable
        Image sources (URLs, paths; other values are ignored), e.g. a table's first rows.
    storage_protocols : sequence of str, optional
        The protocols read through fsspec (the featurizer's ``storageProtocols``);
        :data:`~sparkimg_ml.fetch.DEFAULT_STORAGE_PROTOCOLS` when omitted. Other
        schemes are not checked.

    Returns
    -------
    list of str
        ``"missing_dependency: <detail>"`` for each protocol whose back-end fails
        to import, in the order the protocols first appear; empty when all can be read.

    Examples
    --------
    >>> missing_backends(["https://example.com/a.png", "/data/b.jpg", None])
    []
    """
    return [reason for _, reason in _missing(sources, storage_protocols).values()]


def check_backends(stage: str, input_col: str, sources: Iterable[object],
                   storage_protocols: Sequence[str] | None = None) -> None:
    """Raise when a storage back-end that ``sources`` need is missing here (``handleInvalid="error"``).

    The driver-side counterpart of the per-row ``missing_dependency`` reason: a job
    that would fail at its first storage row fails before it starts, with the same
    reason and the package to install.

    Raises
    ------
    sparkimg_ml.errors.MissingDependencyError
        Naming the first such source and every missing back-end.
    """
    missing = _missing(sources, storage_protocols)
    if not missing:
        return
    from ..errors import MissingDependencyError, redact_source

    source = next(iter(missing.values()))[0]
    reasons = "; ".join(reason for _, reason in missing.values())
    raise MissingDependencyError(
        f"{stage} could not read the image of row with {input_col}={redact_source(source)}: {reasons}. "
        "Install it where the driver and the executors run, or set handleInvalid='keep' (null output, "
        "reason in errorCol) or 'skip' (drop the rows).")
