"""The errcode (+ errmsg) -> exception mapping, redaction and operator hints."""

from __future__ import annotations

import pytest

from channel.wechatcom_kf import redaction
from channel.wechatcom_kf.errors import (
    KfAccessTokenInvalid,
    KfApiError,
    KfCredentialError,
    KfDuplicateMsgId,
    KfError,
    KfMediaError,
    KfNetworkError,
    KfRateLimited,
    KfSendForbidden,
    KfSendLimitReached,
    KfSendWindowExpired,
    KfSessionEnded,
    KfSessionStateInvalid,
    KfSyncTokenInvalid,
    KfSystemBusy,
    describe_fail_type,
    errcode_hint,
    error_for,
)
from channel.wechatcom_kf.redaction import redact, register_secret


@pytest.mark.parametrize(
    ("errcode", "cls", "retryable"),
    [
        (-1, KfSystemBusy, True),
        (45009, KfRateLimited, True),
        (45033, KfRateLimited, True),
        (40014, KfAccessTokenInvalid, False),
        (42001, KfAccessTokenInvalid, False),
        (41001, KfAccessTokenInvalid, False),
        (40001, KfCredentialError, False),
        (95011, KfCredentialError, False),
        (95012, KfCredentialError, False),
        (95017, KfCredentialError, False),
        (95023, KfCredentialError, False),
        (95007, KfSyncTokenInvalid, False),
        (95001, KfSendLimitReached, False),
        (95002, KfSendWindowExpired, False),
        (95018, KfSessionStateInvalid, False),
        (95013, KfSessionEnded, False),
        (40007, KfMediaError, False),
        (40058, KfApiError, False),
        (95016, KfApiError, False),
    ],
)
def test_error_for_maps_each_errcode(errcode: int, cls: type[KfError], retryable: bool):
    err = error_for(errcode, "some message", "kf/send_msg")
    assert type(err) is cls
    assert err.retryable is retryable
    assert (err.errcode, err.api, err.errmsg) == (errcode, "kf/send_msg", "some message")
    assert str(errcode) in str(err)


def test_send_refusals_share_a_base():
    for errcode in (95001, 95002, 95013, 95018):
        assert isinstance(error_for(errcode, "", "kf/send_msg"), KfSendForbidden)


def test_a_refusal_is_a_duplicate_only_when_our_msgid_was_sent_and_its_text_says_so():
    assert type(error_for(40058, "msgid exists", "kf/send_msg", msgid_sent=True)) is KfDuplicateMsgId
    # WeCom appends hints to errmsg; the public report quotes a Chinese text (code UNCONFIRMED).
    wecom_style = "msg_id重复, hint: [1700000000_1_abc], from ip: 1.2.3.4, more info at https://x?e=40058"
    assert type(error_for(40058, wecom_style, "kf/send_msg", msgid_sent=True)) is KfDuplicateMsgId
    assert type(error_for(40058, "msgid exists", "kf/send_msg")) is KfApiError  # no msgid of ours
    assert type(error_for(95001, "", "kf/send_msg", msgid_sent=True)) is KfSendLimitReached


@pytest.mark.parametrize(
    "errmsg",
    [
        "content length 2049 out of range [1, 2048] bytes",  # the emulator, for a too-long text
        "invalid msgid",  # the emulator, for a malformed msgid
        "invalid parameter",
        "",
    ],
)
def test_a_40058_that_is_not_about_a_reused_msgid_is_a_failure_not_a_delivery(errmsg: str):
    err = error_for(40058, errmsg, "kf/send_msg", msgid_sent=True)
    assert type(err) is KfApiError
    assert not err.retryable


def test_a_too_long_text_at_wecom_is_a_failure():
    err = error_for(45002, "content size out of limit", "kf/send_msg", msgid_sent=True)
    assert type(err) is KfApiError and "2048" in str(err)


def test_network_error_is_retryable_and_ambiguous_by_default():
    err = KfNetworkError("kf/sync_msg: read timeout", api="kf/sync_msg")
    assert err.retryable and err.ambiguous and err.errcode is None


def test_redact_query_params_and_json():
    url = "http://h/cgi-bin/gettoken?corpid=ww1&corpsecret=S3cr3tValue&x=1"
    assert redact(url) == "http://h/cgi-bin/gettoken?corpid=ww1&corpsecret=***&x=1"
    text = "Max retries exceeded with url: /cgi-bin/kf/send_msg?access_token=AbC-123_x (Caused by X)"
    assert (
        redact(text) == "Max retries exceeded with url: /cgi-bin/kf/send_msg?access_token=*** (Caused by X)"
    )
    assert (
        redact('{"access_token": "tok123456", "expires_in": 7200}')
        == '{"access_token": "***", "expires_in": 7200}'
    )
    assert redact("access_token%3Dtok123456") == "access_token%3D***"


def test_registered_secrets_are_removed_everywhere():
    register_secret("TopSecretValue-42")
    register_secret("abc")  # too short to redact safely: ignored
    assert redact("echo TopSecretValue-42 twice TopSecretValue-42") == "echo *** twice ***"
    assert redact("abc stays") == "abc stays"


def test_secret_registry_is_bounded():
    for i in range(redaction._MAX_SECRETS * 3):
        register_secret(f"rotating-token-{i:04d}")
    assert len(redaction._secrets) == redaction._MAX_SECRETS
    assert redact(f"rotating-token-{redaction._MAX_SECRETS * 3 - 1:04d}") == "***"


def test_exception_texts_are_redacted():
    err = KfNetworkError("kf/sync_msg: GET /x?access_token=tok123456 failed", api="kf/sync_msg")
    assert "tok123456" not in str(err)
    err2 = error_for(40014, "invalid access_token=tok123456", "kf/sync_msg")
    assert "tok123456" not in str(err2) and "tok123456" not in err2.errmsg


def test_describe_fail_type():
    assert "5-message" in describe_fail_type(6)
    assert "48 h" in describe_fail_type(4)
    assert "rejected" in describe_fail_type(10)
    assert "undocumented" in describe_fail_type(99)


def test_errcode_hints():
    for errcode in (40001, 40014, 42001, 41001, 45009, 95001, 95002, 95007, 95017, 95018):
        assert errcode_hint(errcode), errcode
    assert "可调用接口的应用" in errcode_hint(95017)
    assert errcode_hint(12345) == "" and errcode_hint(None) == ""
    assert errcode_hint(95018) in str(error_for(95018, "x", "kf/send_msg"))
