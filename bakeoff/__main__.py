"""``python -m bakeoff``: the same program as the installed ``bakeoff`` command.

``python -m`` puts the folder it is started in first on ``sys.path``; the ``bakeoff`` script does not. Left
there, a file in that folder would be importable by a recipe's ``agent: module:Class`` (or shadow an installed
package) just because of where the command was typed. The entry is dropped unless that folder is the one
``bakeoff`` itself was imported from: a source checkout run without installing, whose code is the project.
"""

import os
import sys

import bakeoff


def _drop_start_folder() -> None:
    if sys.flags.safe_path or not sys.path:  # -P / PYTHONSAFEPATH: nothing was added
        return
    first = os.path.realpath(sys.path[0] or os.curdir)
    if first != os.path.realpath(os.curdir):
        return
    project = os.path.dirname(os.path.dirname(os.path.realpath(bakeoff.__file__)))
    if first != project:
        del sys.path[0]


_drop_start_folder()

from bakeoff.cli.app import main  # noqa: E402  (after the path is fixed: the CLI imports lazily from it)

main()
