"""`%docker` (line) and `%%docker` (cell) magics: interpolate, split, hand to `dispatch.execute`."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope, no_var_expand

from workbench.kernel_ext import dispatch, interpolate
from workbench.kernel_ext.session import NotebookSession
from workbench.errors import InvalidArgument

__all__ = ["DockerMagics"]


@magics_class
class DockerMagics(Magics):
    """`%docker VERB [ARGS]` with the `workbench` CLI's verbs and flags; `%%docker build -t TAG` takes the
    cell as its Dockerfile. `{expr}`, `$name` and `${name}` put Python values in (one argument each)."""

    def __init__(self, shell: Any, session: NotebookSession) -> None:
        super().__init__(shell)
        self.session = session

    @needs_local_scope
    @no_var_expand
    @line_cell_magic
    def docker(self, line: str, cell: str | None = None, local_ns: dict[str, Any] | None = None) -> Any:
        ns = self.shell.user_ns
        if local_ns is not None and local_ns is not ns:
            ns = {**ns, **local_ns}
        try:
            argv = interpolate.split(line, ns)
        except ValueError as err:
            raise InvalidArgument(f"cannot split the command line: {err}") from None
        return dispatch.execute(self.session, argv, cell=cell, ns=ns)
