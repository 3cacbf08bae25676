"""A WeCom Customer Service (微信客服) emulator: the other side of the protocol, over real HTTP."""

from sandbox.emulator.emulator import WeComEmulator
from sandbox.emulator.faults import Faults
from sandbox.emulator.models import Rejection, SentMessage, Servicer, UploadedMedia

__all__ = ["Faults", "Rejection", "SentMessage", "Servicer", "UploadedMedia", "WeComEmulator"]
