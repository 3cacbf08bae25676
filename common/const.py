"""Names of bot, voice and channel types used across the runtime (CoW keeps them here)."""

OPENAI = "openai"
CHATGPT = "chatGPT"
ECHO = "echo"

WECHATCOM_KF = "wechatcom_kf"
WECHAT_KF = "wechat_kf"
TERMINAL = "terminal"
