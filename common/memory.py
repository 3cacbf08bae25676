"""Per-session memory shared by channels and plugins (as in CoW): the last image a customer sent."""

from common.expired_dict import ExpiredDict

# session_id -> {"path": local image path, "msg": ChatMessage}; bounded in time and size.
USER_IMAGE_CACHE = ExpiredDict(60 * 3, max_items=10000)
