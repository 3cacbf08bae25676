"""Helpers of ``channel/wechatcom_kf/install.py`` (stdlib only; not copied into a CoW tree).

- ``cow_tree``: recognising a CoW tree and its flavour, reading its files as text, copying folders,
  backups and checked writes;
- ``factory_edit``: adding the channel's branch to ``channel/channel_factory.py``;
- ``settings_edit``: adding the channel's keys to CoW 1.x's ``available_setting`` in ``config.py``;
- ``packages``: the host interpreter's packages (imported as ``install_support.packages``).

The names of the first three are importable from this package too (``install_support.recognise``).
"""

from .cow_tree import (
    BOM,
    FLAVOUR_1,
    FLAVOUR_2_0,
    FLAVOUR_2_1,
    INSTALLER_FILES,
    CowTree,
    TreeError,
    WriteError,
    app_plugin_gate,
    available_setting_dict,
    class_names,
    config_raises_on_unknown_keys,
    folder_changes,
    install_folder,
    package_files,
    parse_source,
    read_source,
    recognise,
    unified_diff,
    unique_backup,
    write_checked,
    write_text,
)
from .factory_edit import (
    BranchState,
    ChannelClass,
    add_factory_branch,
    branch_count,
    branch_state,
    check_factory,
)
from .settings_edit import add_available_settings, check_settings, py_literal, setting_keys

__all__ = [
    "BOM",
    "FLAVOUR_1",
    "FLAVOUR_2_0",
    "FLAVOUR_2_1",
    "INSTALLER_FILES",
    "BranchState",
    "ChannelClass",
    "CowTree",
    "TreeError",
    "WriteError",
    "add_available_settings",
    "add_factory_branch",
    "app_plugin_gate",
    "available_setting_dict",
    "branch_count",
    "branch_state",
    "check_factory",
    "check_settings",
    "class_names",
    "config_raises_on_unknown_keys",
    "folder_changes",
    "install_folder",
    "package_files",
    "parse_source",
    "py_literal",
    "read_source",
    "recognise",
    "setting_keys",
    "unified_diff",
    "unique_backup",
    "write_checked",
    "write_text",
]
