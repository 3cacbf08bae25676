from bridge.context import Context, ContextType
from bridge.reply import Reply, ReplyType

CONTEXT_TYPES = {
    "TEXT": 1, "VOICE": 2, "IMAGE": 3, "FILE": 4, "VIDEO": 5, "SHARING": 6, "IMAGE_CREATE": 10,
    "ACCEPT_FRIEND": 19, "JOIN_GROUP": 20, "PATPAT": 21, "FUNCTION": 22, "EXIT_GROUP": 23,
}  # fmt: skip
REPLY_TYPES = {
    "TEXT": 1, "VOICE": 2, "IMAGE": 3, "IMAGE_URL": 4, "VIDEO_URL": 5, "FILE": 6, "CARD": 7,
    "INVITE_ROOM": 8, "INFO": 9, "ERROR": 10, "TEXT_": 11, "VIDEO": 12, "MINIAPP": 13,
}  # fmt: skip


def test_context_type_members_and_values_match_cow():
    assert {m.name: m.value for m in ContextType} == CONTEXT_TYPES


def test_reply_type_members_and_values_match_cow():
    assert {m.name: m.value for m in ReplyType} == REPLY_TYPES
    assert str(ReplyType.ERROR) == "ERROR"  # used in "[ERROR]\n" decoration


def test_context_is_dict_like_over_kwargs():
    ctx = Context(ContextType.TEXT, "hi", {"session_id": "u1"})
    assert ctx["type"] is ContextType.TEXT and ctx["content"] == "hi"
    assert ctx["session_id"] == "u1" and ctx.get("missing", 5) == 5
    assert "session_id" in ctx and "missing" not in ctx
    ctx["receiver"] = "u1"
    assert ctx.kwargs == {"session_id": "u1", "receiver": "u1"}
    assert Context().kwargs is not Context().kwargs


def test_reply_holds_type_and_content():
    reply = Reply(ReplyType.TEXT, "ok")
    assert (reply.type, reply.content) == (ReplyType.TEXT, "ok")
