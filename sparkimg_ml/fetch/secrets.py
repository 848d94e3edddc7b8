"""Secrets in fetch configuration: which headers and storage options are credentials, and ``env:NAME``."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from ..errors import redact_source

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


def secret_values(options: Any) -> list[str]:
    """The credential values in resolved storage options, at any depth (for :func:`redact_secrets`).

    Examples
    --------
    >>> secret_values({"s3": {"key": "AKIA1", "secret": "s3cr3t", "region": "eu"}, "abfs": {"anon": True}})
    ['AKIA1', 's3cr3t']
    """
    found: list[str] = []
    if isinstance(options, dict):
        for name, value in options.items():
            if is_secret_option(str(name), value):
                found.append(value)
            else:
                found.extend(secret_values(value))
    elif isinstance(options, list):
        for value in options:
            found.extend(secret_values(value))
    return found


_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>,;()]+")
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<name>[\w.-]*(?:token|secret|password|passwd|credential|signature|sig|api[_-]?key|access[_-]?key"
    r"|account[_-]?key|sas)[\w.-]*)(?P<sep>\s*[=:]\s*['\"]?)(?P<value>[^\s'\",;&]+)",
    re.IGNORECASE,
)
_AUTH_SCHEME_VALUE = re.compile(r"\b(Bearer|Basic|Token|SharedKey|AWS4-HMAC-SHA256)\s+[^\s'\",;]+", re.IGNORECASE)
_CLOUD_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b")


def redact_secrets(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` (an exception message) with credentials replaced by ``***``.

    Removed: the given secret values, user-info and secret query values of URLs,
    ``name=value``/``name: value`` pairs whose name says token, secret, password,
    key, signature or credential, ``Bearer``/``Basic`` values and AWS key ids.

    Examples
    --------
    >>> redact_secrets("denied for AKIAIOSFODNN7EXAMPLE at https://u:pw@h/o?X-Amz-Signature=abc, token=xyz")
    'denied for *** at https://h/o?X-Amz-Signature=***, token=***'
    >>> redact_secrets("bad key s3cr3t-value", ["s3cr3t-value"])
    'bad key ***'
    """
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 4:  # a shorter value would blank out ordinary words
            text = text.replace(value, "***")
    text = _URL_IN_TEXT.sub(lambda m: redact_source(m.group(0), max_length=len(m.group(0))), text)
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group('name')}{m.group('sep')}***", text)
    text = _AUTH_SCHEME_VALUE.sub(lambda m: f"{m.group(1)} ***", text)
    return _CLOUD_KEY_ID.sub("***", text)
