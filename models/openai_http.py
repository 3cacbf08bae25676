"""A small HTTP client for OpenAI-compatible APIs: bearer auth, proxy, timeout, capped retries.

Shared by the chat bot and the speech provider. Errors come out as `OpenAIRequestError`, whose text
never contains the API key or the request URL (requests' exception texts may include both).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.openai.com/v1"
# Statuses worth another try: rate limiting and server-side trouble.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAIRequestError(Exception):
    """A failed call. `kind` is one of "timeout", "connection", "http", "bad_response", and
    "stream_error" (the API reported an error inside a 2xx event stream)."""

    def __init__(self, kind: str, status: int | None = None, code: str | None = None) -> None:
        self.kind = kind
        self.status = status
        self.code = code  # the API's error code/type, e.g. "context_length_exceeded"
        super().__init__(f"{kind} status={status} code={code}")


def chinese_error_message(err: OpenAIRequestError) -> str:
    """A message a customer can read; says what happened without any internal detail."""
    if err.kind == "timeout":
        return "抱歉，模型服务响应超时，请稍后再试。"
    if err.kind == "connection":
        return "抱歉，暂时无法连接到模型服务，请稍后再试。"
    if err.kind == "bad_response":
        return "抱歉，模型服务返回了无法识别的内容，请稍后再试。"
    if err.kind == "stream_error":
        return "抱歉，模型服务暂时不可用，请稍后再试。"
    if err.status in (401, 403):
        return "抱歉，模型服务鉴权失败，请管理员检查 API Key 配置。"
    if err.status == 429:
        return "抱歉，当前请求太多，请稍后再试。"
    if err.code == "context_length_exceeded":
        return "抱歉，对话内容太长了，请发送「#清除记忆」后重新提问。"
    if err.status is not None and err.status >= 500:
        return "抱歉，模型服务暂时不可用，请稍后再试。"
    return f"抱歉，模型服务返回错误（HTTP {err.status}），请稍后再试。"


class OpenAIHttpClient:
    """POSTs to `<api_base>/<path>` with retries on 429/5xx, timeouts and connection errors."""

    def __init__(
        self,
        api_key: str,
        api_base: str = DEFAULT_API_BASE,
        *,
        proxy: str = "",
        timeout: float = 60.0,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api_key = api_key
        self.api_base = api_base.rstrip("/")
        # Resolved once: with trust_env, requests scans and decodes the whole environment on every call.
        self._proxies = {"http": proxy, "https": proxy} if proxy else environment_proxies(self.api_base)
        self._verify: bool | str = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self.timeout = timeout
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._local = threading.local()  # requests.Session is not documented as thread-safe

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.proxies = dict(self._proxies)
            session.verify = self._verify
            self._local.session = session
        return session

    @property
    def proxies(self) -> dict[str, str]:
        """The proxies every call uses: the ``proxy`` setting, else the environment's for ``api_base``."""
        return dict(self._proxies)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """POST with retries; returns a 2xx response or raises OpenAIRequestError.

        `kwargs` go to requests (json=, data=, files=, stream=); file contents must be bytes so a
        retry can send them again.
        """
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET with the same retries as `post` (`params=` for the query)."""
        return self.request("GET", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call with retries on 429/5xx, timeouts and connection errors (the one retry policy).

        With ``stream=True`` the retries cover everything up to a 2xx status line; the body is the
        caller's to read (and close) and is never retried, since part of it may have been used.
        """
        url = f"{self.api_base}/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {self._api_key}"}
        last: OpenAIRequestError | None = None
        for attempt in range(1, self.max_attempts + 1):
            retry_after: float | None = None
            try:
                resp = self._session().request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except requests.Timeout:
                last = OpenAIRequestError("timeout")
            except requests.RequestException as exc:
                # Only the class name: the message may carry the URL and proxy credentials.
                logger.debug("request to %s failed: %s", path, type(exc).__name__)
                last = OpenAIRequestError("connection")
            else:
                if resp.ok:
                    return resp
                last = OpenAIRequestError("http", resp.status_code, _error_code(resp))
                retry_after = _retry_after(resp)
                resp.close()
                if resp.status_code not in RETRY_STATUSES:
                    raise last
            if attempt < self.max_attempts:
                delay = self._delay(attempt, retry_after)
                logger.warning(
                    "%s failed (%s), attempt %d/%d, retrying in %.2fs",
                    path,
                    last,
                    attempt,
                    self.max_attempts,
                    delay,
                )
                self._sleep(delay)
        assert last is not None
        raise last

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
        delay *= 0.5 + random.random() / 2  # jitter spreads retries of many sessions apart
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_cap))
        return delay


def client_from_conf(get: Callable[..., Any], api_key: str, api_base: str) -> OpenAIHttpClient:
    """A client for ``api_base`` with the shared connection settings (proxy, timeout), so the chat
    bots and the speech provider connect alike.

    `get` is `conf().get`; taking it as an argument keeps this module free of the configuration.
    """
    return OpenAIHttpClient(
        api_key,
        api_base or DEFAULT_API_BASE,
        proxy=get("proxy", "") or "",
        timeout=float(get("request_timeout", 60.0)),
    )


def environment_proxies(url: str) -> dict[str, str]:
    """The proxies that requests would take from the environment for ``url`` (NO_PROXY honoured)."""
    found = requests.utils.get_environ_proxies(url)
    return {scheme: proxy for scheme, proxy in found.items() if scheme != "no"}


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _error_code(resp: requests.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        # Dify (and others) answer {"code": ..., "message": ..., "status": ...} at the top level.
        error = body if isinstance(body, dict) and isinstance(body.get("code"), str) else None
    if error is None:
        return None
    logger.debug("error body: %s", error.get("message"))
    code = error.get("code") or error.get("type")
    return str(code) if code else None
