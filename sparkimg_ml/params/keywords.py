"""Keyword construction for every stage: one ``setParams``, one rule for ``None``, renamed Params.

pyspark stages repeat every Param twice as a keyword argument (constructor and
``setParams``), each with a literal default. Here the keywords are the Params
themselves: a stage's constructor takes ``**params`` (typed for checkers with a
``TypedDict`` per Params mixin), its defaults are the Params' own defaults, and
:meth:`KeywordParams.setParams` applies them the same way for every stage:

* a name that is no Param of the stage is a ``TypeError`` naming the valid ones;
* ``None`` clears the Param (back to its default, or unset);
* a Param renamed in a later version (``_legacy_params``) is still accepted, with
  a ``DeprecationWarning``, and saved stages that use the old name load (the
  loader goes through :meth:`getParam` and :meth:`_setDefault`, which map it).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, ClassVar, TypeVar

from pyspark.ml.param import Param, Params

K = TypeVar("K", bound="KeywordParams")


class KeywordParams(Params):
    """Mixin: ``setParams(**params)`` with validated names, ``None`` clearing, and renamed Params.

    Examples
    --------
    >>> from sparkimg_ml import TensorReshaper
    >>> stage = TensorReshaper(inputCol="features", shape=[2, 2, 3])
    >>> stage.setParams(shape=None).getShape() is None
    True
    >>> TensorReshaper(inputCol="features", shap=[2, 2])
    Traceback (most recent call last):
    ...
    TypeError: TensorReshaper got an unknown Param 'shap'. Its Params: axes, handleInvalid, inputCol, outputCol, outputFormat, shape.
    """

    #: Old Param name -> current name, for names a later version changed.
    _legacy_params: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__ and callable(getattr(cls, "_transform", None)):
            # A stage: its constructor and setParams show its Params as keywords (help(), notebooks).
            signature = keyword_signature(cls)
            cls.__init__.__signature__ = signature  # type: ignore[attr-defined]

            def setParams(self: Any, **params: Any) -> Any:
                return KeywordParams.setParams(self, **params)

            setParams.__signature__ = signature  # type: ignore[attr-defined]
            setParams.__doc__ = KeywordParams.setParams.__doc__
            setParams.__qualname__ = f"{cls.__qualname__}.setParams"
            cls.setParams = setParams  # type: ignore[method-assign]

    def setParams(self: K, **params: Any) -> K:
        """Set Params by name; a Param passed as ``None`` goes back to its default (or unset)."""
        resolved = {self._current_name(name): value for name, value in params.items()}
        before = dict(self._paramMap)
        for name, value in resolved.items():
            if value is None:
                self.clear(self.getParam(name))
        self._set(**{name: value for name, value in resolved.items() if value is not None})
        try:
            self._check_params()
        except ValueError:
            self._paramMap = before  # a refused combination changes nothing
            raise
        return self

    def _check_params(self) -> None:
        """Raise ``ValueError`` when Params that are valid alone disagree (stages override this)."""

    def _current_name(self, name: str) -> str:
        if name in self._legacy_params:
            current = self._legacy_params[name]
            warnings.warn(f"{type(self).__name__}: the Param {name!r} is now called {current!r}; "
                          f"{name!r} will stop working in a later version.", DeprecationWarning, stacklevel=4)
            return current
        if not self.hasParam(name):
            raise TypeError(f"{type(self).__name__} got an unknown Param {name!r}. Its Params: "
                            f"{', '.join(sorted(p.name for p in self.params))}.")
        return name

    def getParam(self, paramName: str) -> Param:
        """The Param named ``paramName`` (a name used before a rename finds the renamed Param)."""
        return super().getParam(self._legacy_params.get(paramName, paramName))

    def _setDefault(self: K, **kwargs: Any) -> K:
        # Saved stages record their defaults by name, the old names included.
        return super()._setDefault(**{self._legacy_params.get(k, k): v for k, v in kwargs.items()})


def keyword_signature(stage_type: type) -> inspect.Signature:
    """``(self, *, param=None, ...)`` for every Param of ``stage_type``: what ``help()`` and notebooks show.

    Examples
    --------
    >>> import inspect
    >>> from sparkimg_ml import TensorReshaper
    >>> str(inspect.signature(TensorReshaper))
    '(*, axes=None, handleInvalid=None, inputCol=None, outputCol=None, outputFormat=None, shape=None)'
    """
    names = sorted(name for name in dir(stage_type) if isinstance(getattr(stage_type, name, None), Param))
    return inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in names])
