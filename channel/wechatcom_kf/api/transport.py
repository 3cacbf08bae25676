"""HTTP transport of the KF client: token cache on wechatpy, errcode mapping, the call's retry policy.

wechatpy 1.8.18's own retry on 40001/40014/42001 recurses without a cap, so the client is built with
``auto_retry=False`` and the token is refreshed here, at most once per call. Its ``gettoken`` URL is
hard-coded, so ``fetch_access_token`` is overridden to use the configured base (the emulator).
Retryable failures are retried by the :class:`~..retry.RetryPolicy` the caller passes (``ONCE`` for
calls whose caller retries itself, see ``retry.py``). A ``gettoken`` that refuses the credentials
(wrong secret or corp id, API not allowed, untrusted IP) is reported once with the fix, and token
fetches then back off (:class:`CredentialBackoff`): WeCom blocks an IP that repeats wrong secrets.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
import urllib3
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException

from ..errors import (
    KfAccessTokenInvalid,
    KfApiError,
    KfCredentialError,
    KfDuplicateMsgId,
    KfError,
    KfNetworkError,
    KfRateLimited,
    error_for,
)
from ..metrics import observed_token_fetch
from ..redaction import redact, register_secret
from ..retry import CREDENTIALS, RetryPolicy
from .http_session import JSON_HEADERS, PreparedPosts, environment_proxies, make_session

__all__ = ["JSON_HEADERS", "PreparedPosts", "Transport", "environment_proxies", "make_session"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _RedactFilter(logging.Filter):
    """urllib3 logs request lines (with ``access_token=``) at DEBUG; rewrite them before any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = redact(record.getMessage())
            record.args = None
        else:
            record.msg = redact(record.msg)
        return True


_url_logger = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _RedactFilter) for f in _url_logger.filters):
    _url_logger.addFilter(_RedactFilter())


# gettoken answers that no retry fixes: a setting or the WeCom admin console must change.
CREDENTIAL_FIXES: dict[int, str] = {
    40001: "check wechatcom_kf_secret (the Secret of the self-built app that may call the KF API: "
    "应用管理 → 自建应用 → Secret) and that it belongs to wechatcom_corp_id",
    40013: "wechatcom_corp_id is not a valid CorpID: copy it from 我的企业 → 企业信息 → 企业ID",
    48002: "the app of wechatcom_kf_secret may not call this API: add it under 微信客服 → API → "
    "可调用接口的应用 (a secret of the standalone 微信客服 admin does not work here)",
    60020: "this server's IP is not a trusted IP of the app: add it under 应用管理 → the app → 企业可信IP",
}


class KfCredentialsRefused(KfCredentialError):
    """gettoken refused the corp id, secret or server IP (``CREDENTIAL_FIXES``): not now.

    Retryable by the callers that reschedule their work (a pull, a reply's delivery), never inline:
    for ``retry_in`` seconds the transport refuses token fetches itself, without asking WeCom.
    """

    retryable = True

    def __init__(self, message: str, *, errcode: int | None, errmsg: str, retry_in: float) -> None:
        super().__init__(message, errcode=errcode, api="gettoken", errmsg=errmsg)
        self.retry_in = retry_in


class CredentialBackoff:
    """No gettoken for ``policy.delay(n)`` after the n-th refusal in a row; a token resets it.

    The first refusal of an errcode is logged as a WARNING with the fix, later ones at INFO. Used under
    the transport's token lock: not thread-safe by itself.
    """

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._refusals = 0
        self._until = 0.0
        self._last: KfCredentialsRefused | None = None
        self._reported: set[int | None] = set()

    def check(self) -> None:
        """Raise the last refusal again, without asking WeCom, while backing off."""
        last, left = self._last, self._until - self._clock()
        if last is not None and left > 0:
            raise KfCredentialsRefused(
                f"gettoken not asked again for {left:.0f} s: {last}",
                errcode=last.errcode,
                errmsg=last.errmsg,
                retry_in=left,
            )

    def refused(self, err: KfError) -> KfCredentialsRefused:
        """Start (or lengthen) the backoff after WeCom refused the credentials with ``err``."""
        self._refusals += 1
        delay = self._policy.delay(self._refusals)
        self._until = self._clock() + delay
        fix = CREDENTIAL_FIXES.get(err.errcode or 0, "")
        self._last = KfCredentialsRefused(
            f"gettoken: errcode {err.errcode}: {err.errmsg} ({fix})",
            errcode=err.errcode,
            errmsg=err.errmsg,
            retry_in=delay,
        )
        if err.errcode not in self._reported:
            self._reported.add(err.errcode)
            logger.warning(
                "WeCom refused the credentials (gettoken errcode %s: %s): %s. No new access_token is asked "
                "for %.0f s, then less and less often (WeCom blocks an IP that repeats wrong secrets); "
                "pulls and replies wait meanwhile. Restart after changing a setting; a fix in the WeCom "
                "admin console is picked up by the next attempt",
                err.errcode,
                err.errmsg,
                fix,
                delay,
            )
        else:
            logger.info(
                "WeCom still refuses the credentials (errcode %s); next try in %.0f s", err.errcode, delay
            )
        return self._last

    def succeeded(self) -> None:
        if self._refusals:
            logger.info("WeCom accepted the credentials after %d refusal(s)", self._refusals)
            self._refusals, self._until, self._last = 0, 0.0, None
            self._reported.clear()


class TokenClient(WeChatClient):
    """wechatpy's enterprise client with every URL, gettoken included, under ``api_base``."""

    expires_at: int | None

    def __init__(
        self, corp_id: str, secret: str, *, api_base: str, timeout: float, http: requests.Session
    ) -> None:
        super().__init__(corp_id, secret, timeout=timeout, auto_retry=False)
        self.API_BASE_URL = api_base
        self._http = http
        self.fetch_count = 0

    @observed_token_fetch  # outcomes for metrics and /readyz
    def fetch_access_token(self) -> dict[str, Any]:
        """https://developer.work.weixin.qq.com/document/path/91039"""
        self.fetch_count += 1
        logger.debug("fetching a new access_token")
        res = self._http.get(
            self.API_BASE_URL + "gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
            timeout=self.timeout,
        )
        if res.status_code >= 400:
            raise WeChatClientException(None, None, client=self, response=res)
        result = self._handle_result(res)  # raises on a non-zero errcode
        if not isinstance(result, dict) or not isinstance(result.get("access_token"), str):
            raise KfNetworkError("gettoken: answer is not a token", api="gettoken")
        token = result["access_token"]
        register_secret(token)
        expires_in = int(result.get("expires_in") or 7200)
        self.session.set(self.access_token_key, token, expires_in)
        self.expires_at = int(time.time()) + expires_in
        return result


def _connection_refused(exc: requests.ConnectionError) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def http_error(api: str, response: requests.Response | None) -> KfError:
    """An error for a non-2xx answer: 5xx is a (retryable) network error."""
    status = None if response is None else response.status_code
    if status == 429:
        return KfRateLimited(f"{api}: HTTP 429", api=api)
    if status is None or status >= 500:
        return KfNetworkError(f"{api}: HTTP {status}", api=api, http_status=status)
    return KfApiError(f"{api}: HTTP {status}", api=api)


def to_kf_error(exc: BaseException, api: str, *, msgid_sent: bool = False) -> KfError:
    """Map a requests / wechatpy exception to the channel's hierarchy; texts are redacted."""
    if isinstance(exc, KfError):
        return exc
    if isinstance(exc, requests.ConnectTimeout):
        return KfNetworkError(f"{api}: connect timeout", api=api, ambiguous=False)
    if isinstance(exc, requests.Timeout):
        return KfNetworkError(f"{api}: read timeout", api=api)
    if isinstance(exc, requests.ConnectionError):
        refused = _connection_refused(exc)
        return KfNetworkError(f"{api}: connection error: {exc}", api=api, ambiguous=not refused)
    if isinstance(exc, WeChatClientException):
        if exc.errcode is None:
            return http_error(api, exc.response)
        return error_for(int(exc.errcode), str(exc.errmsg), api, msgid_sent=msgid_sent)
    return KfNetworkError(f"{api}: {type(exc).__name__}: {exc}", api=api)


class Transport:
    """Token handling, JSON calls and the retry loop shared by every KF API method."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        api_base: str,
        timeout: float,
        session: requests.Session | None,
        pool_size: int,
    ) -> None:
        register_secret(secret)
        if not api_base.endswith("/"):
            api_base += "/"
        self.api_base = api_base
        self.timeout = timeout
        self._own_session = session is None
        self.session = session if session is not None else make_session(pool_size, api_base)
        self.client = TokenClient(corp_id, secret, api_base=api_base, timeout=timeout, http=self.session)
        self._posts = PreparedPosts(self.session, api_base)
        self._token_lock = threading.Lock()  # one gettoken at a time: no stampede
        self._credentials = CredentialBackoff(CREDENTIALS)
        self._closed = threading.Event()

    # --- token ----------------------------------------------------------------------------------------

    def token(self) -> str:
        with self._token_lock:
            self._credentials.check()
            try:
                token = str(self.client.access_token)
            except (requests.RequestException, WeChatClientException) as exc:
                err = to_kf_error(exc, "gettoken")
                if err.errcode in CREDENTIAL_FIXES:
                    err = self._credentials.refused(err)
            else:
                self._credentials.succeeded()
                return token
        if isinstance(err, KfNetworkError):
            err.ambiguous = False  # the call itself was not sent: repeating it is always safe
        raise err

    def invalidate(self, stale: str) -> None:
        """Forget ``stale`` unless another thread already replaced it."""
        with self._token_lock:
            key = self.client.access_token_key
            if self.client.session.get(key) == stale:
                self.client.session.delete(key)
                self.client.expires_at = None

    # --- calls ------------------------------------------------------------------------------------------

    def call(self, api: str, send: Callable[[str], T], *, policy: RetryPolicy, idempotent: bool = True) -> T:
        """Run ``send(access_token)``; retryable failures are retried as ``policy`` allows."""

        def retryable(err: Exception) -> bool:
            if not isinstance(err, KfError) or not err.retryable or self._closed.is_set():
                return False
            if isinstance(err, KfCredentialsRefused):
                return False  # the backoff outlasts any inline retry; the caller's own retry comes later
            # A call that must not run twice is not resent after the request may have reached WeCom.
            return idempotent or not (isinstance(err, KfNetworkError) and err.ambiguous)

        def log_retry(err: Exception, failures: int, delay: float) -> None:
            logger.info("%s; retry %d in %.2f s", err, failures, delay)

        try:
            return policy.call(
                lambda: self._with_token(api, send), retry_if=retryable, stop=self._closed, on_retry=log_retry
            )
        except KfError as err:
            self._log_failure(api, err)
            raise

    def _with_token(self, api: str, send: Callable[[str], T]) -> T:
        """One attempt; a rejected access_token is replaced and the request repeated, once."""
        token = self.token()
        try:
            return send(token)
        except KfAccessTokenInvalid as err:
            logger.info("%s: access_token rejected (errcode %s); fetching a new one", api, err.errcode)
            self.invalidate(token)
        return send(self.token())

    def json_request(
        self,
        method: str,
        path: str,
        token: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        msgid_sent: bool = False,
    ) -> dict[str, Any]:
        """One HTTP request through wechatpy; returns the JSON answer or raises a KfError."""
        if logger.isEnabledFor(logging.DEBUG):
            shown = json.dumps(body, ensure_ascii=False) if body is not None else ""
            logger.debug("WeCom %s %s params=%s body=%s", method, path, redact(params or {}), redact(shown))
        try:
            if method == "POST" and body is not None and params is None and files is None:
                result = self._post_json(path, token, body)
            else:
                result = self._wechatpy_request(method, path, token, params, body, files)
        except (requests.RequestException, WeChatClientException) as exc:
            raise to_kf_error(exc, path, msgid_sent=msgid_sent) from None
        if not isinstance(result, dict):
            raise KfNetworkError(f"{path}: answer is not JSON", api=path)
        return result

    def _post_json(self, path: str, token: str, body: dict[str, Any]) -> Any:
        """The hot path (every sync_msg, send_msg, service_state call): a prepared POST, the answer
        read by wechatpy as its own calls are (errcode -> WeChatClientException)."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        response = self._posts.post(path, token, data, self.timeout)
        if response.status_code >= 400:
            raise WeChatClientException(None, None, client=self.client, response=response)
        return self.client._handle_result(response)

    def _wechatpy_request(
        self,
        method: str,
        path: str,
        token: str,
        params: dict[str, Any] | None,
        body: dict[str, Any] | None,
        files: dict[str, Any] | None,
    ) -> Any:
        query = dict(params or {})
        query["access_token"] = token
        kwargs: dict[str, Any] = {"params": query, "timeout": self.timeout}
        if body is not None:
            kwargs["data"] = body
            kwargs["headers"] = JSON_HEADERS
        if files is not None:
            kwargs["files"] = files
        request = self.client.get if method == "GET" else self.client.post
        return request(path, **kwargs)

    def close(self) -> None:
        self._closed.set()
        if self._own_session:
            self.session.close()

    @staticmethod
    def _log_failure(api: str, err: KfError) -> None:
        if isinstance(err, KfCredentialsRefused):
            logger.debug("%s not sent: %s", api, err)  # CredentialBackoff reported it
        elif isinstance(err, KfDuplicateMsgId):
            logger.info("%s: msgid already used, the message was sent before", api)
        elif err.retryable:
            logger.info("WeCom call failed (errcode=%s): %s", err.errcode, err)  # the caller retries
        else:
            logger.warning("WeCom call failed (errcode=%s): %s", err.errcode, err)
