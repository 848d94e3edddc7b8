"""Secrets in fetch configuration: which headers and storage options are credentials, and ``env:NAME``."""

from __future__ import annotations

import os
import re
from typing import Any

#: Header names whose values are credentials: dropped when a redirect leaves the
#: first origin, and only accepted as ``env:NAME`` references in the ``headers`` Param.
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

#: A header name matching this is treated as carrying a secret (an API key or token).
SECRET_HEADER_PATTERN = re.compile(r"authorization|cookie|token|secret|api-?key|password|signature",
                                   re.IGNORECASE)

#: Prefix of a header or storage-option value read from the executor's environment.
ENV_PREFIX = "env:"

# gcsfs accepts these non-secret modes as its ``token`` option.
_PUBLIC_TOKEN_MODES = frozenset({"anon", "google_default", "cloud", "browser", "cache"})
_SECRET_OPTION_PATTERN = re.compile(
    r"^(key|token|secret)$|secret|password|passwd|account_key|sas_token|connection_string|credential",
    re.IGNORECASE,
)


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential that must not be written to disk.

    Examples
    --------
    >>> is_secret_header("Authorization"), is_secret_header("X-Api-Key"), is_secret_header("Accept")
    (True, True, False)
    """
    return bool(SECRET_HEADER_PATTERN.search(name))


def is_secret_option(name: str, value: Any) -> bool:
    """Whether a storage option holds a credential (``key``, ``secret``, ``sas_token``, ...).

    Examples
    --------
    >>> is_secret_option("secret", "abc"), is_secret_option("token", "anon"), is_secret_option("anon", True)
    (True, False, False)
    """
    if not isinstance(value, str) or not _SECRET_OPTION_PATTERN.search(name):
        return False
    return not (name.lower() == "token" and value in _PUBLIC_TOKEN_MODES)


def resolve_env(value: str, where: str) -> str:
    """``value`` itself, or the environment variable it names as ``env:NAME``.

    Raises ``ValueError`` naming ``where`` when the variable is not set.

    Examples
    --------
    >>> os.environ["SPARKIMG_DOC_TOKEN"] = "Bearer abc"
    >>> resolve_env("env:SPARKIMG_DOC_TOKEN", "header Authorization")
    'Bearer abc'
    """
    if not value.startswith(ENV_PREFIX):
        return value
    name = value[len(ENV_PREFIX):]
    resolved = os.environ.get(name)
    if resolved is None:
        raise ValueError(
            f"{where} refers to environment variable {name!r}, which is not set in this process "
            "(on a cluster, set it on the executors, e.g. spark.executorEnv." + name + ")."
        )
    return resolved


def resolve_options(value: Any, where: str) -> Any:
    if isinstance(value, str):
        return resolve_env(value, where)
    if isinstance(value, dict):
        return {k: resolve_options(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_options(v, where) for v in value]
    return value

