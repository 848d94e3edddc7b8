"""Saving and loading stages the same way on classic Spark and on Spark Connect.

Loading is ``DefaultParamsReader``'s: it rebuilds a stage from its module path and
Param names (Params renamed since a file was saved are mapped by
:class:`~sparkimg_ml.params.keywords.KeywordParams`). The stage writer adds one
entry to the saved metadata, ``fingerprint`` (see :mod:`.fingerprint`), which the
stage reader hands back as ``savedFingerprint()``; files without it still load.

``DefaultParamsWriter.overwrite()`` deletes an existing path through the JVM
session (``_jsparkSession``), which a Spark Connect client does not have, so
``stage.write().overwrite().save(path)`` fails there with
``JVM_ATTRIBUTE_NOT_SUPPORTED`` while plain ``save`` works. The stages' writer
asks the Connect server to delete the path instead, the way pyspark's own
``Pipeline``/``PipelineModel`` writers do on Connect.
"""

from __future__ import annotations

from typing import Any

import pyspark
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsReader,
    DefaultParamsWritable,
    DefaultParamsWriter,
    MLWriter,
)

from ..schema import FINGERPRINT_KEY
from .fingerprint import HasFingerprint


def _session_argument(reader_or_writer: Any) -> Any:
    """What ``DefaultParamsWriter.saveMetadata``/``loadMetadata`` take: pyspark 3.5 the SparkContext, 4.x the session."""
    return reader_or_writer.sc if pyspark.__version__.startswith("3.") else reader_or_writer.sparkSession


def _in_connect_mode() -> bool:
    from pyspark.sql.utils import is_remote

    return is_remote()


class StageWriter(DefaultParamsWriter):
    """``DefaultParamsWriter`` whose ``overwrite()`` also works on Spark Connect, saving the fingerprint."""

    def saveImpl(self, path: str) -> None:
        extra = None
        if isinstance(self.instance, HasFingerprint):
            extra = {FINGERPRINT_KEY: self.instance.fingerprint()}
        DefaultParamsWriter.saveMetadata(self.instance, path, _session_argument(self), extraMetadata=extra)

    def _handleOverwrite(self, path: str) -> None:
        if not _in_connect_mode():
            super()._handleOverwrite(path)
            return
        try:
            from pyspark.ml.connect.readwrite import RemoteMLWriter
        except ImportError as error:  # Connect clients before 4.0 have no server-side helper
            raise RuntimeError(
                f"Overwriting {path!r} is not supported by this Spark Connect client; delete the "
                "path first and call save(path), or use pyspark 4.0 or newer."
            ) from error
        RemoteMLWriter.handleOverwrite(path, True)


class StageWritable(DefaultParamsWritable):
    """``DefaultParamsWritable`` with a writer that can overwrite on Spark Connect too.

    The saved format is ``DefaultParamsWriter``'s, unchanged.
    """

    def write(self) -> MLWriter:
        """Returns a :class:`StageWriter` for this stage."""
        return StageWriter(self)  # type: ignore[arg-type]


class StageReader(DefaultParamsReader):
    """``DefaultParamsReader`` that also hands the saved fingerprint to the loaded stage."""

    def load(self, path: str) -> Any:
        # DefaultParamsReader.load, reading the metadata once and keeping its fingerprint.
        metadata = DefaultParamsReader.loadMetadata(path, _session_argument(self))
        saved_class = DefaultParamsReader._DefaultParamsReader__get_class(metadata["class"])  # type: ignore[attr-defined]
        instance = saved_class()
        instance._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(instance, metadata)
        if isinstance(instance, HasFingerprint):
            saved = metadata.get(FINGERPRINT_KEY)
            instance._saved_fingerprint = saved if isinstance(saved, dict) else None
        return instance


class StageReadable(DefaultParamsReadable):
    """``DefaultParamsReadable`` whose reader restores ``savedFingerprint()``."""

    @classmethod
    def read(cls) -> StageReader:
        """Returns a :class:`StageReader` for this class."""
        return StageReader(cls)
