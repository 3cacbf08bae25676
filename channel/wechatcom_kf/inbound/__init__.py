"""Inbound side of the KF channel: rendering (``render``), media download (``media``) and turn
assembly (``turns``). Import the submodules directly; this package imports nothing eagerly so the
message module and the assembler can depend on each other's pieces without a cycle.
"""
