"""Helpers of ``channel/wechatcom_kf/install.py`` (stdlib only; not copied into a CoW tree)."""
