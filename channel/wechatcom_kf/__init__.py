"""WeCom Customer Service (微信客服) channel for chatgpt-on-wechat style hosts.

Import the channel class from ``channel.wechatcom_kf.wechatcom_kf_channel``; this package imports
nothing eagerly so that the host's channel factory pays for it only when the channel is chosen.
"""
