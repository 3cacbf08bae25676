"""Channel type names (upstream ``common/const.py``)."""

WECHAT_KF = "wechat_kf"
