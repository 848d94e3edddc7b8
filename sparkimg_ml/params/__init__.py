"""Params shared by the stages, in pyspark style: converters, mixins, keyword construction, persistence.

* :mod:`.converters` -- validating type converters (``TypeError`` for a type, ``ValueError`` naming the Param);
* :mod:`.image`, :mod:`.fetch`, :mod:`.model`, :mod:`.rows`, :mod:`.output` -- the Params mixins, each with
  the plain value it builds (``ImageSpec``, ``FetchOptions``, ...);
* :mod:`.keywords` -- ``setParams(**params)`` for every stage, renamed Params;
* :mod:`.stage` -- column checks and the one ``_transform`` tail of the image stages;
* :mod:`.persistence` -- saving that also overwrites on Spark Connect.
"""
