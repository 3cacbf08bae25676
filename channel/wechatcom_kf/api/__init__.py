"""The WeCom KF API client (see ``client.KfApi``)."""

from .client import (
    MEDIA_KINDS,
    DownloadedMedia,
    KfApi,
    Servicer,
    ServiceState,
    SyncPage,
    parse_content_disposition,
)

__all__ = [
    "MEDIA_KINDS",
    "DownloadedMedia",
    "KfApi",
    "ServiceState",
    "Servicer",
    "SyncPage",
    "parse_content_disposition",
]
