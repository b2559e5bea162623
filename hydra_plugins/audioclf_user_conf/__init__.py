"""Hydra finds this plugin by its namespace (hydra_plugins): the user's conf/ ahead of audioclf's own configs."""

import os

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

from audioclf.config import CONF_DIR, user_conf_dir


class UserConfFirst(SearchPathPlugin):
    """For audioclf's apps only (their main config folder is the package's conf/), put the user's
    conf/ folder (./conf, or $AUDIOCLF_CONF) right ahead of it: a file there adds an option to a
    group, or replaces the package's file of the same name."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        folder = user_conf_dir()
        main = next((entry.path for entry in search_path.get_path() if entry.provider == "main"), "")
        if main.startswith("pkg://"):  # an installed app's: pkg://audioclf/conf or pkg://audioclf.conf
            ours = main.removeprefix("pkg://").replace("/", ".") == "audioclf.conf"
        else:  # compose() from a folder (initialize_config_dir): file://<path>
            ours = os.path.realpath(main.removeprefix("file://")) == str(CONF_DIR)
        if folder is not None and ours:
            search_path.prepend("audioclf-user", f"file://{folder}", anchor=SearchPathQuery(provider="main"))
