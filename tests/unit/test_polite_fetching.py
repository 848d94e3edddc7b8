"""Polite fetching for crawls: per-host request rate, conditional re-fetches, X-Robots-Tag opt-outs, their Params."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest
import urllib3.connectionpool
from crawl_server import ETAG, LAST_MODIFIED, CrawlServer
from fault_server import PNG, FaultServer

from sparkimg_ml import REASON_CODES, ImageEmbedder, ImageUrlFeaturizer
from sparkimg_ml.errors import SourceError
from sparkimg_ml.fetch import Fetched, Fetcher, FetchOptions, Validators


@pytest.fixture(scope="module")
def crawl() -> Iterator[CrawlServer]:
    with CrawlServer() as running:
        yield running


def fetcher(**options: object) -> Fetcher:
    defaults: dict = {"timeout": 5.0, "max_retries": 0}
    defaults.update(options)
    return Fetcher(FetchOptions(**defaults))


def failure(fetch: Fetcher, source: str, previous: Validators | None = None) -> SourceError:
    with pytest.raises(SourceError) as caught:
        fetch.fetch_with_validators(source, previous)
    assert caught.value.code in REASON_CODES or caught.value.code.startswith("http_")
    return caught.value


def _arrivals(crawl: CrawlServer, path: str, since: float) -> list[float]:
    return sorted(r.at for r in crawl.requests if r.path == path and r.at >= since)


# --------------------------------------------------------------------------- per-host rate


def _fetch_all(fetch: Fetcher, urls: list[str], threads: int = 8) -> list[bytes]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fetch.fetch, urls))


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[float]]:
    """When each HTTP request is handed to the transport (urllib3's ``urlopen``), per host.

    Measured on the client: the server's arrival times also carry its own accept and
    thread start-up delays, which bunch the first requests on a loaded machine.
    """
    recorded: dict[str, list[float]] = {}
    lock = threading.Lock()
    original = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def urlopen(pool: urllib3.connectionpool.HTTPConnectionPool, *args: Any, **kwargs: Any) -> Any:
        with lock:
            recorded.setdefault(str(pool.host), []).append(time.monotonic())
        return original(pool, *args, **kwargs)

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", urlopen)
    return recorded


def test_without_a_rate_limit_twenty_requests_start_at_once(crawl, starts):
    # The control for the next test: the same load without the limiter is far faster than 20/s.
    with fetcher() as fetch:
        assert _fetch_all(fetch, [crawl.url("/image.png")] * 20) == [PNG] * 20
    assert len(starts["127.0.0.1"]) == 20 and max(starts["127.0.0.1"]) - min(starts["127.0.0.1"]) < 0.5


def test_the_rate_limit_spaces_requests_to_one_host(crawl, starts):
    since = time.monotonic()
    with fetcher(max_requests_per_second_per_host=20.0, concurrency=8) as fetch:
        assert _fetch_all(fetch, [crawl.url("/image.png")] * 20) == [PNG] * 20
    times = sorted(starts["127.0.0.1"])
    # The first request starts at once and the 20th no earlier than 19/20 s later (a late wake-up only
    # adds time); 5 % for clock granularity.
    span = times[-1] - times[0]
    assert len(times) == 20 and span >= 0.95 * 19 / 20, span
    assert span < 19 / 20 + 1.5, span  # and the limiter does not slow down further than it must
    # The server saw the 20 requests, spread out too (its own timing is looser on a busy machine).
    arrivals = _arrivals(crawl, "/image.png", since)
    assert len(arrivals) == 20 and arrivals[-1] - arrivals[0] >= 0.5 * 19 / 20


def test_each_host_has_its_own_rate(crawl, starts):
    urls = [crawl.url("/image.png"), f"http://localhost:{crawl.port}/image.png"] * 10
    with fetcher(max_requests_per_second_per_host=10.0, concurrency=8) as fetch:
        assert _fetch_all(fetch, urls) == [PNG] * 20
    assert sorted(starts) == ["127.0.0.1", "localhost"]
    for times in starts.values():
        assert len(times) == 10 and max(times) - min(times) >= 0.95 * 9 / 10
    # Two hosts at 10/s each: the 20 requests take about 0.9 s, not the 1.9 s one shared limit would need.
    everything = [at for times in starts.values() for at in times]
    assert max(everything) - min(everything) < 1.6


def test_a_row_whose_turn_comes_after_its_deadline_fails_with_timeout_without_waiting(crawl):
    since = time.monotonic()
    with fetcher(max_requests_per_second_per_host=1.0, timeout=0.6) as fetch:
        assert fetch.fetch(crawl.url("/image.png")) == PNG
        start = time.monotonic()
        with pytest.raises(SourceError) as caught:
            fetch.fetch(crawl.url("/image.png"))  # its turn: 1 s after the first, past its 0.6 s deadline
        assert time.monotonic() - start < 0.3  # failed at once, not at the deadline
    assert caught.value.reason == ("timeout: the next request to 127.0.0.1 allowed by "
                                   "maxRequestsPerSecondPerHost=1 starts after the deadline")
    assert len(_arrivals(crawl, "/image.png", since)) == 1


def test_a_row_that_can_wait_for_its_turn_within_its_deadline_does(crawl):
    with fetcher(max_requests_per_second_per_host=4.0, timeout=1.0) as fetch:
        start = time.monotonic()
        assert [fetch.fetch(crawl.url("/image.png")) for _ in range(3)] == [PNG] * 3
        assert time.monotonic() - start >= 0.45  # two waits of 1/4 s


def test_retries_count_against_the_rate():
    with FaultServer() as server, fetcher(max_requests_per_second_per_host=5.0, max_retries=3,
                                          max_retry_wait=0.0) as fetch:
        start = time.monotonic()
        assert fetch.fetch(server.url("/flaky/3/rate")) == PNG  # 503, 503, 503, then the image
        assert time.monotonic() - start >= 0.9 * 3 / 5
        assert server.hits("flaky:rate") == 4


# --------------------------------------------------------------------------- conditional requests


def test_a_first_fetch_returns_the_servers_validators(crawl):
    with fetcher() as fetch:
        fetched = fetch.fetch_with_validators(crawl.url("/validated"))
    assert fetched == Fetched(PNG, Validators(ETAG, LAST_MODIFIED))
    sent = crawl.requests_to("/validated")[-1].headers
    assert "If-None-Match" not in sent and "If-Modified-Since" not in sent


@pytest.mark.parametrize("previous, sent", [
    (Validators(ETAG, LAST_MODIFIED), {"If-None-Match": ETAG, "If-Modified-Since": LAST_MODIFIED}),
    (Validators(etag=ETAG), {"If-None-Match": ETAG}),
    (Validators(last_modified=LAST_MODIFIED), {"If-Modified-Since": LAST_MODIFIED}),
])
def test_an_unchanged_source_is_not_modified_and_sends_the_validators(crawl, previous, sent):
    with fetcher() as fetch:
        error = failure(fetch, crawl.url("/validated"), previous)
    assert error.reason == "not_modified: HTTP 304: the copy the validators name is current"
    headers = crawl.requests_to("/validated")[-1].headers
    assert {k: v for k, v in headers.items() if k.startswith("If-")} == sent


@pytest.mark.parametrize("previous", [Validators(etag='"v0"'), Validators(last_modified="Tue, 20 Oct 2015 07:28:00 GMT"),
                                      Validators()])
def test_a_changed_source_is_fetched_again_with_its_new_validators(crawl, previous):
    with fetcher() as fetch:
        assert fetch.fetch_with_validators(crawl.url("/validated"), previous) == Fetched(
            PNG, Validators(ETAG, LAST_MODIFIED))


def test_validators_travel_with_redirects(crawl):
    hop = crawl.url("/redirect-to?url=/validated")
    with fetcher() as fetch:
        assert failure(fetch, hop, Validators(ETAG)).code == "not_modified"
        assert fetch.fetch_with_validators(hop) == Fetched(PNG, Validators(ETAG, LAST_MODIFIED))


def test_conditional_headers_configured_by_hand_also_make_a_304_not_modified(crawl):
    with fetcher(headers={"if-none-match": ETAG}) as fetch:
        assert failure(fetch, crawl.url("/validated")).code == "not_modified"


def test_a_304_to_an_unconditional_request_stays_an_http_status(crawl):
    with fetcher() as fetch:
        assert failure(fetch, crawl.url("/echo-status/304")).reason == "http_304: Not Modified"


def test_responses_without_validators_give_empty_ones_and_other_sources_ignore_them(crawl, tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    with fetcher() as fetch:
        assert fetch.fetch_with_validators(crawl.url("/image.png"), Validators(ETAG)) == Fetched(PNG, Validators())
        assert fetch.fetch_with_validators(str(image), Validators(ETAG)) == Fetched(PNG, Validators())
        with pytest.raises(SourceError, match="^not_found: "):
            fetch.fetch_with_validators(str(tmp_path / "missing.png"), Validators(ETAG))


@pytest.mark.parametrize("previous, error, message", [
    (Validators(etag='"v1"\r\nX-Injected: 1'), ValueError, "Validators.etag must not contain control characters"),
    (Validators(last_modified="Wed\n"), ValueError, "Validators.last_modified must not contain control"),
    (Validators(etag=b'"v1"'), TypeError, "Validators.etag must be a string or None; got bytes"),  # type: ignore[arg-type]
])
def test_validators_that_cannot_be_headers_are_refused(crawl, previous, error, message, tmp_path):
    with fetcher() as fetch:
        for source in (crawl.url("/validated"), str(tmp_path / "a.png")):
            with pytest.raises(error, match=message):
                fetch.fetch_with_validators(source, previous)


def test_the_rate_limit_applies_to_conditional_requests_too(crawl):
    with fetcher(max_requests_per_second_per_host=5.0) as fetch:
        start = time.monotonic()
        for _ in range(3):
            assert failure(fetch, crawl.url("/validated"), Validators(ETAG)).code == "not_modified"
        assert time.monotonic() - start >= 0.9 * 2 / 5


# --------------------------------------------------------------------------- X-Robots-Tag opt-out


def _robots(crawl: CrawlServer, *tags: str) -> str:
    return crawl.url("/robots?" + urlencode([("tag", t) for t in tags]))


@pytest.mark.parametrize("tags, directive", [
    (["noai"], "noai"), (["noimageai"], "noimageai"), (["NoAI"], "noai"), (["noindex, noimageai"], "noimageai"),
    (["noindex", "noai"], "noai"), (["sparkimg_ml: noai"], "noai"), (["SparkImg_ML: noimageai, nofollow"], "noimageai"),
])
def test_an_opted_out_image_is_refused_when_asked(crawl, tags, directive):
    url = _robots(crawl, *tags)
    with fetcher(respect_opt_out=True) as fetch:
        with pytest.raises(SourceError) as caught:
            fetch.fetch(url)
    assert caught.value.reason == f"opted_out: X-Robots-Tag {directive}"
    with fetcher() as fetch:  # off by default
        assert fetch.fetch(url) == PNG


@pytest.mark.parametrize("tags", [[], ["noindex"], ["noimageindex, nofollow"], ["otherbot: noai"],
                                  ["unavailable_after: 25 Jun 2010 15:00:00 PST"], ["noairplane"]])
def test_other_directives_and_other_crawlers_opt_outs_are_not_ours(crawl, tags):
    with fetcher(respect_opt_out=True) as fetch:
        assert fetch.fetch(_robots(crawl, *tags)) == PNG


def test_an_opt_out_addressed_to_the_configured_user_agent_applies(crawl):
    url = _robots(crawl, "my-crawler: noai")
    with fetcher(respect_opt_out=True, headers={"User-Agent": "my-crawler/1.0 (+https://example.com/bot)"}) as fetch:
        assert failure(fetch, url).reason == "opted_out: X-Robots-Tag noai"
        assert fetch.fetch(_robots(crawl, "sparkimg_ml: noai")) == PNG


def test_an_opt_out_sent_with_a_304_is_heard(crawl):
    # The owner opted out after the earlier copy was taken: that copy should be dropped, not kept.
    url = crawl.url("/validated?tag=noimageai")
    with fetcher(respect_opt_out=True) as fetch:
        assert failure(fetch, url, Validators(ETAG)).reason == "opted_out: X-Robots-Tag noimageai"
    with fetcher() as fetch:
        assert failure(fetch, url, Validators(ETAG)).code == "not_modified"


def test_reason_codes_are_documented():
    assert "ETag" in REASON_CODES["not_modified"] and "304" in REASON_CODES["not_modified"]
    assert "noai" in REASON_CODES["opted_out"] and "respectOptOut" in REASON_CODES["opted_out"]


# --------------------------------------------------------------------------- Params


@pytest.mark.parametrize("stage_class", [ImageUrlFeaturizer, ImageEmbedder])
def test_params_reach_the_fetch_options(stage_class):
    stage = stage_class(maxRequestsPerSecondPerHost=2.5, respectOptOut=True)
    assert stage.getMaxRequestsPerSecondPerHost() == 2.5 and stage.getRespectOptOut() is True
    options = stage._fetch_options()
    assert options.max_requests_per_second_per_host == 2.5 and options.respect_opt_out is True
    default = stage_class()._fetch_options()
    assert default.max_requests_per_second_per_host == 0.0 and default.respect_opt_out is False
    stage.setMaxRequestsPerSecondPerHost(0).setRespectOptOut(False)
    assert stage.getMaxRequestsPerSecondPerHost() == 0.0 and stage.getRespectOptOut() is False


@pytest.mark.parametrize("kwargs, error, message", [
    ({"maxRequestsPerSecondPerHost": -1}, ValueError, r"maxRequestsPerSecondPerHost must be >= 0; got -1.0."),
    ({"maxRequestsPerSecondPerHost": float("inf")}, ValueError, "maxRequestsPerSecondPerHost must be finite"),
    ({"maxRequestsPerSecondPerHost": "10/s"}, TypeError, "maxRequestsPerSecondPerHost must be a number"),
    ({"maxRequestsPerSecondPerHost": True}, TypeError, "maxRequestsPerSecondPerHost must be a number"),
    ({"respectOptOut": "yes"}, TypeError, "respectOptOut must be True or False"),
    ({"respectOptOut": 1}, TypeError, "respectOptOut must be True or False"),
])
def test_bad_param_values_are_refused_when_set(kwargs, error, message):
    with pytest.raises(error, match=message):
        ImageUrlFeaturizer(**kwargs)


@pytest.mark.parametrize("bad, error, message", [
    ({"max_requests_per_second_per_host": -0.5}, ValueError, "max_requests_per_second_per_host must be >= 0"),
    ({"max_requests_per_second_per_host": "fast"}, TypeError, "max_requests_per_second_per_host must be a number"),
])
def test_bad_fetch_options_are_refused(bad, error, message):
    with pytest.raises(error, match=message):
        FetchOptions(**bad)


def test_model_reads_are_not_subject_to_crawl_etiquette():
    from sparkimg_ml.model.onnx import model_fetch_options

    options = model_fetch_options(FetchOptions(max_requests_per_second_per_host=0.5, respect_opt_out=True),
                                  "https://models.example.com/m.onnx")
    assert options.max_requests_per_second_per_host == 0.0 and options.respect_opt_out is False
