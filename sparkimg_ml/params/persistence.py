"""Saving stages the same way on classic Spark and on Spark Connect.

(Loading needs nothing special: ``DefaultParamsReader`` rebuilds a stage from its
module path and Param names; Params renamed since a file was saved are mapped by
:class:`~sparkimg_ml.params.keywords.KeywordParams`.)

``DefaultParamsWriter.overwrite()`` deletes an existing path through the JVM
session (``_jsparkSession``), which a Spark Connect client does not have, so
``stage.write().overwrite().save(path)`` fails there with
``JVM_ATTRIBUTE_NOT_SUPPORTED`` while plain ``save`` works. The stages' writer
asks the Connect server to delete the path instead, the way pyspark's own
``Pipeline``/``PipelineModel`` writers do on Connect.
"""

from __future__ import annotations

from pyspark.ml.util import DefaultParamsWritable, DefaultParamsWriter, MLWriter


def _in_connect_mode() -> bool:
    from pyspark.sql.utils import is_remote

    return is_remote()


class StageWriter(DefaultParamsWriter):
    """``DefaultParamsWriter`` whose ``overwrite()`` also works on Spark Connect."""

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
