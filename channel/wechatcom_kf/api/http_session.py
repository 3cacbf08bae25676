"""The HTTP session of the KF client and its prepared POSTs (requests + urllib3 do the HTTP)."""

from __future__ import annotations

import logging
import os

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

logger = logging.getLogger(__name__)


def environment_proxies(url: str) -> dict[str, str]:
    """The proxies that requests would take from the environment for ``url`` (NO_PROXY honoured)."""
    found = requests.utils.get_environ_proxies(url)
    return {scheme: proxy for scheme, proxy in found.items() if scheme != "no"}


def make_session(pool_size: int, base_url: str) -> requests.Session:
    """One session whose connection pool serves ``pool_size`` concurrent threads per host.

    Every call goes to ``base_url``'s host, so the environment's proxy and CA bundle settings are read
    once here; with ``trust_env`` requests would scan and decode every environment variable per call.
    """
    session = requests.Session()
    session.trust_env = False
    session.proxies = environment_proxies(base_url)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    if session.proxies:
        logger.info("WeCom API calls go through the environment's proxy for %s", ", ".join(session.proxies))
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


class PreparedPosts:
    """JSON POSTs to the API with the request prepared once per (path, access_token).

    ``Session.request`` prepares every call from scratch: it merges the session's settings, parses and
    re-encodes the URL with its access_token character by character, and checks its arguments against
    typing Protocols (slow on Python 3.11): about 40 % of the CPU of a ``kf/send_msg``, the call made
    for every message. Here the URL and headers come from one ``Session.prepare_request`` per token
    and path, and each call goes straight to the session's adapter, with the session's proxies, CA
    bundle and connection pool: requests and urllib3 still do the HTTP. Not used: redirects (the API
    does not redirect), cookies (it sets none) and response hooks (none are installed).
    """

    def __init__(self, session: requests.Session, api_base: str) -> None:
        self._session = session
        self._adapter: BaseAdapter = session.get_adapter(api_base)
        self._api_base = api_base
        self._templates: dict[str, tuple[str, requests.PreparedRequest]] = {}  # path -> (token, request)

    def post(self, path: str, token: str, body: bytes, timeout: float) -> requests.Response:
        entry = self._templates.get(path)
        if entry is None or entry[0] != token:
            request = requests.Request(
                "POST", self._api_base + path, params={"access_token": token}, headers=JSON_HEADERS
            )
            entry = (token, self._session.prepare_request(request))
            self._templates[path] = entry  # one per path: a new token replaces the old one's
        template = entry[1]
        prepared = requests.PreparedRequest()
        prepared.method, prepared.url, prepared.body = "POST", template.url, body
        prepared.headers = template.headers.copy()
        prepared.headers["Content-Length"] = str(len(body))
        session = self._session
        return self._adapter.send(
            prepared,
            timeout=timeout,
            verify=True if session.verify is None else session.verify,
            cert=session.cert,
            proxies=session.proxies,
        )
