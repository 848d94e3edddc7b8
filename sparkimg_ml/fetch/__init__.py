"""Source -> bytes, with no Spark import.

:class:`Fetcher` reads ``http(s)://`` URLs, local paths, ``file://`` and
``data:`` URIs and, when ``fsspec`` is installed, storage URLs such as
``s3://``, ``gs://``, ``abfs://`` or ``hdfs://``. Every per-row problem is
raised as :class:`~sparkimg_ml.errors.SourceError` with a reason code; a
fetch never takes longer than :attr:`FetchOptions.timeout`.

One module per concern:

* :mod:`.options` — :class:`FetchOptions`, the limits and policies;
* :mod:`.policy` — :class:`NetworkPolicy`: which hosts and addresses may be reached;
* :mod:`.secrets` — credential headers and storage options, ``env:NAME`` references;
* :mod:`.deadline` — running blocking calls under the per-row deadline, the watchdog;
* :mod:`.http` — the HTTP transport: guarded connections, retries, redirects;
* :mod:`.polite` — crawl etiquette: per-host rate limit, conditional re-fetches, opt-out headers;
* :mod:`.local`, :mod:`.data_uri`, :mod:`.storage` — the other readers;
* :mod:`.fetcher` — :class:`Fetcher`, which sends each source to its reader.
"""

from .fetcher import Fetcher
from .http import USER_AGENT
from .options import DEFAULT_STORAGE_PROTOCOLS, FetchOptions
from .policy import (
    ALWAYS_BLOCKED_NETWORKS,
    PRIVATE_NETWORKS,
    NetworkPolicy,
    parse_host_rule,
)
from .polite import OPT_OUT_DIRECTIVES, Fetched, Validators
from .secrets import (
    ENV_PREFIX,
    SECRET_HEADER_PATTERN,
    SENSITIVE_HEADERS,
    is_secret_header,
    is_secret_option,
    resolve_env,
)

__all__ = [
    "ALWAYS_BLOCKED_NETWORKS", "DEFAULT_STORAGE_PROTOCOLS", "ENV_PREFIX", "OPT_OUT_DIRECTIVES", "PRIVATE_NETWORKS",
    "SECRET_HEADER_PATTERN", "SENSITIVE_HEADERS", "USER_AGENT", "FetchOptions", "Fetched", "Fetcher",
    "NetworkPolicy", "Validators", "is_secret_header", "is_secret_option", "parse_host_rule", "resolve_env",
]
