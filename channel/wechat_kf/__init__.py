"""Upstream CowAgent's name for the KF channel, served by ``channel/wechatcom_kf/``."""
