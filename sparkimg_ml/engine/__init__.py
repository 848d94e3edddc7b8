"""The engine: what runs inside Spark's Python workers, as plain functions of Arrow batches.

* :mod:`.decode` -- the decode loop (fetch + decode into numpy blocks, bounded memory);
* :mod:`.arrow` -- result types, and blocks wrapped as Arrow without copying;
* :mod:`.featurize`, :mod:`.embed` -- each stage's per-batch function;
* :mod:`.udf` -- the one factory that turns a per-batch function into a Spark UDF.

No Params live here: stages pass tasks of plain values (:class:`~.decode.DecodeTask`,
:class:`~.embed.EmbedTask`), so everything runs without Spark in tests and profiles.
"""
