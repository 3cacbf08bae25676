"""Names of bot, model and channel types used across the runtime (CoW keeps them here).

Upstream's bundled plugins compare ``Bridge().get_bot_type("chat")`` with the bot type names below
and check ``#model <name>`` against ``MODEL_LIST`` (godcmd), so the names and values follow CoW 2.x.
This runtime creates the echo bot, the OpenAI-compatible bot (``openai``; ``chatGPT`` is its
historical name; ``deepseek``, ``dashscope``, ``qwen``, ``zhipu``, ``moonshot`` select its provider
preset) and the Dify bot (``dify``): the other bot types exist here for plugins to compare with.
"""

# -- bot types: this runtime's own ---------------------------------------------------------------
OPENAI = "openai"
CHATGPT = "chatGPT"
ECHO = "echo"

# -- bot types that upstream plugins name (CoW 2.x values; CoW 1.x spelled ZHIPU_AI "glm-4") -------
OPEN_AI = "openAI"
CHATGPTONAZURE = "chatGPTOnAzure"
LINKAI = "linkai"
BAIDU = "baidu"
QIANFAN = "qianfan"
XUNFEI = "xunfei"
QWEN = "qwen"
QWEN_DASHSCOPE = "dashscope"
GEMINI = "gemini"
ZHIPU_AI = "zhipu"
CLAUDEAPI = "claudeAPI"
MOONSHOT = "moonshot"
MiniMax = "minimax"  # sic: upstream's spelling
DEEPSEEK = "deepseek"
DOUBAO = "doubao"
MODELSCOPE = "modelscope"
CUSTOM = "custom"

# -- model names ------------------------------------------------------------------------------------
GPT35 = "gpt-3.5-turbo"  # godcmd's fallback when ``model`` is empty
GPT4 = "gpt-4"
GPT4_TURBO = "gpt-4-turbo"
GPT4_TURBO_PREVIEW = "gpt-4-turbo-preview"  # what godcmd's ``#model gpt-4-turbo`` stores
GPT_4o = "gpt-4o"  # sic: upstream's spelling
GPT_4o_MINI = "gpt-4o-mini"
GPT_41 = "gpt-4.1"
GPT_41_MINI = "gpt-4.1-mini"
GPT_41_NANO = "gpt-4.1-nano"
GPT_5 = "gpt-5"
GPT_5_MINI = "gpt-5-mini"
GPT_5_NANO = "gpt-5-nano"
O1 = "o1-preview"
O1_MINI = "o1-mini"

DEEPSEEK_CHAT = "deepseek-chat"
DEEPSEEK_REASONER = "deepseek-reasoner"
QWEN_TURBO = "qwen-turbo"
QWEN_PLUS = "qwen-plus"
QWEN_MAX = "qwen-max"

# Speech models (the voice providers' defaults).
WHISPER_1 = "whisper-1"
TTS_1 = "tts-1"
TTS_1_HD = "tts-1-hd"

# The names ``#model`` accepts (godcmd answers "模型名称不存在" for any other): chat models that
# OpenAI and the best-known OpenAI-compatible services (DeepSeek, Qwen, GLM, Kimi, Doubao ...) serve.
# A list, as upstream's, so plugins may add to it. The configured ``model`` need not be in it.
_OPENAI_MODELS = [
    GPT35, "gpt-3.5-turbo-0125", "gpt-3.5-turbo-1106", "gpt-3.5-turbo-16k",
    GPT4, "gpt-4-0613", "gpt-4-32k", "gpt-4-32k-0613",
    GPT4_TURBO, GPT4_TURBO_PREVIEW, "gpt-4-0125-preview", "gpt-4-1106-preview", "gpt-4-turbo-2024-04-09",
    GPT_4o, "gpt-4o-2024-08-06", GPT_4o_MINI,
    GPT_41, GPT_41_MINI, GPT_41_NANO,
    GPT_5, GPT_5_MINI, GPT_5_NANO,
    O1, O1_MINI,
]  # fmt: skip
_COMPATIBLE_MODELS = [
    DEEPSEEK_CHAT, DEEPSEEK_REASONER,
    QWEN_TURBO, QWEN_PLUS, QWEN_MAX, "qwen-long", "qwen3-max",
    "glm-4", "glm-4-plus", "glm-4-flash", "glm-4-air", "glm-4-long", "glm-4.5", "glm-4.7",
    "moonshot-v1-8k", "moonshot-v1-32k", "moonshot-v1-128k", "kimi-k2",
    "ernie-4.5-turbo-128k", "ernie-4.5-turbo-32k",
]  # fmt: skip
MODEL_LIST = _OPENAI_MODELS + _COMPATIBLE_MODELS

# -- channel types ----------------------------------------------------------------------------------
WECHATCOM_KF = "wechatcom_kf"
WECHAT_KF = "wechat_kf"
TERMINAL = "terminal"
