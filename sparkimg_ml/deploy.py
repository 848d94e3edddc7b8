"""Make Spark's Python workers able to import ``sparkimg_ml``: :func:`ship`.

The stages run Python code on the executors (the featurizer's Arrow UDF, and any
UDF that unpickles one of our functions). Executors import the package by name,
so on a cluster or a Spark Connect server where it is not installed every such
task fails with ``PythonException ... ModuleNotFoundError: No module named
'sparkimg_ml'``. :func:`ship` zips the package this driver imported and adds it
to the session's Python path: ``SparkContext.addPyFile`` on classic Spark,
``SparkSession.addArtifacts(..., pyfile=True)`` on Spark Connect.

Only the package itself is shipped. Its dependencies (numpy, pandas, pyarrow,
Pillow, urllib3) must be installed where the workers run; for clusters without
them, ship a packed virtual environment instead (see the README).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent
_lock = threading.Lock()
_archives: dict[str, Path] = {}
_shipped: set[str] = set()


def package_archive(directory: str | None = None) -> Path:
    """A zip of the ``sparkimg_ml`` package this process imports, named by its content hash.

    Built once per process (and per ``directory``); ``directory`` defaults to a
    fresh temporary directory. The same sources always give the same file name, and
    changed sources a new one, so a long-lived session never confuses two versions.

    Examples
    --------
    >>> archive = package_archive()
    >>> archive.name.startswith("sparkimg_ml-") and archive.suffix == ".zip"
    True
    >>> import zipfile
    >>> "sparkimg_ml/deploy.py" in zipfile.ZipFile(archive).namelist()
    True
    """
    key = directory or ""
    with _lock:
        if key in _archives and _archives[key].exists():
            return _archives[key]
        files = sorted(
            path for path in _PACKAGE_DIR.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
        )
        digest = hashlib.sha256()
        for path in files:
            digest.update(str(path.relative_to(_PACKAGE_DIR)).encode() + b"\0" + path.read_bytes())
        from ._version import __version__

        target = Path(directory or tempfile.mkdtemp(prefix="sparkimg_ml-ship-"))
        target.mkdir(parents=True, exist_ok=True)
        archive = target / f"sparkimg_ml-{__version__}-{digest.hexdigest()[:12]}.zip"
        if not archive.exists():
            partial = archive.with_suffix(".zip.partial")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zipped:
                for path in files:
                    # Fixed timestamps: the same sources give the same bytes.
                    info = zipfile.ZipInfo(f"sparkimg_ml/{path.relative_to(_PACKAGE_DIR).as_posix()}",
                                           date_time=(1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zipped.writestr(info, path.read_bytes())
            os.replace(partial, archive)
        _archives[key] = archive
        return archive


def _is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect session (which has no SparkContext)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _session_key(spark: Any) -> str:
    if _is_connect(spark):
        return f"connect:{spark.session_id}"
    return f"classic:{spark.sparkContext.applicationId}"


def ship(spark: Any, directory: str | None = None) -> Path:
    """Make the executors of ``spark`` able to import ``sparkimg_ml``; safe to call again.

    Zips the package this driver imports (:func:`package_archive`) and adds it to
    the session's Python path: ``spark.sparkContext.addPyFile`` on classic Spark
    (``local``, standalone, YARN, Kubernetes), ``spark.addArtifacts(..., pyfile=True)``
    on Spark Connect. A second call for the same session does nothing. Call it
    once after creating the session, before the first transform.

    Not needed when the package is installed in the Python environment the
    executors run (``spark.archives`` with a packed venv, a cluster library, or
    ``local[*]`` with the workers on the driver's interpreter).

    Returns the archive's path.

    Examples
    --------
    >>> import sparkimg_ml.deploy
    >>> sparkimg_ml.deploy.ship(spark)  # doctest: +SKIP
    PosixPath('/tmp/sparkimg_ml-ship-.../sparkimg_ml-0.3.0-3f9c1d2e4a5b.zip')
    """
    archive = package_archive(directory)
    key = f"{_session_key(spark)}:{archive.name}"
    with _lock:
        if key in _shipped:
            return archive
        if _is_connect(spark):
            spark.addArtifacts(str(archive), pyfile=True)
        else:
            spark.sparkContext.addPyFile(str(archive))
        _shipped.add(key)
    return archive
