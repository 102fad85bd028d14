"""The registry browser: repositories and paginated tags of any OCI Distribution registry.

Listing goes straight to the registry (`/v2/_catalog`, `/v2/<name>/tags/list`, following `n`/`last`
pages) with the credentials stored by `%docker login` in the login config (`$DOCKER_CONFIG/config.json`,
else `~/.workbench/config.json`); pulling a tag goes through the engine with a progress bar.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import WorkbenchError
from workbench.kernel_ext.widgets._base import Panel, esc

__all__ = ["RegistryBrowser"]


class RegistryBrowser(Panel):
    def __init__(self, registry: str, client: Any = None, *, page_size: int = 50) -> None:
        import ipywidgets as w

        super().__init__(client)
        self.page_size = page_size
        self.registry = w.Text(value=registry, description="registry", layout=w.Layout(width="40%"))
        self.load_button = w.Button(description="load", icon="refresh")
        self.repositories = w.Select(options=[], rows=10, description="repos", layout=w.Layout(width="45%"))
        self.tags = w.Select(options=[], rows=10, description="tags", layout=w.Layout(width="95%"))
        self.prev_button = w.Button(description="◀ prev", disabled=True, layout=w.Layout(width="auto"))
        self.next_button = w.Button(description="next ▶", disabled=True, layout=w.Layout(width="auto"))
        self.page_label = w.Label("")
        self.pull_button = w.Button(description="pull", icon="download", disabled=True)
        self.auth_label = w.HTML("")
        self.progress = w.VBox([])
        self._pages: list[str | None] = [None]   # `last` marker that starts each tag page
        self._index = 0
        self.load_button.on_click(lambda _b: self.load())
        self.repositories.observe(lambda _c: self.show_tags(), names="value")
        self.tags.observe(lambda _c: setattr(self.pull_button, "disabled", not self.tags.value), names="value")
        self.next_button.on_click(lambda _b: self.page(+1))
        self.prev_button.on_click(lambda _b: self.page(-1))
        self.pull_button.on_click(lambda _b: self.pull())
        tag_box = w.VBox([self.tags, w.HBox([self.prev_button, self.page_label, self.next_button]),
                          self.pull_button], layout=w.Layout(width="40%"))
        self.widget = w.VBox([w.HBox([self.registry, self.load_button, self.auth_label]),
                              w.HBox([self.repositories, tag_box]), self.progress, self.status])
        self.load()

    @property
    def host(self) -> str:
        return self.registry.value.strip().removeprefix("http://").removeprefix("https://").rstrip("/")

    def load(self) -> None:
        """List the registry's repositories (every page of the catalog)."""
        creds = self.client.credentials.get(self.host)
        self.auth_label.value = (f'<span style="color:#666">as {esc(creds.username)}</span>' if creds and
                                 creds.username else '<span style="color:#666">anonymous</span>')
        try:
            repos = self.client.registry.catalog(self.host)
        except WorkbenchError as err:
            self.say(f"cannot list {self.host}: {err}", error=True)
            self.repositories.options = []
            return
        self.repositories.options = repos
        self.say(f"{len(repos)} repositories in {self.host}")
        if repos and self.repositories.value is None:
            self.repositories.value = repos[0]

    def show_tags(self) -> None:
        self._pages = [None]
        self._tag_page(0)

    def page(self, step: int) -> None:
        """Go `step` pages forward (+1) or back (-1) in the tag list."""
        index = self._index + step
        if 0 <= index < len(self._pages):
            self._tag_page(index)

    def _tag_page(self, index: int) -> None:
        repo = self.repositories.value
        if not repo:
            self.tags.options = []
            return
        del self._pages[index + 1:]
        try:
            tags = self.client.registry.tags(self.host, repo, n=self.page_size, last=self._pages[index])
        except WorkbenchError as err:
            self.say(f"cannot list tags of {repo}: {err}", error=True)
            return
        self.tags.options = tags
        self._index = index
        full = len(tags) >= self.page_size
        if full:
            self._pages.append(tags[-1])
        self.next_button.disabled = not full
        self.prev_button.disabled = index == 0
        self.page_label.value = f"page {index + 1}"

    @property
    def reference(self) -> str | None:
        if not self.repositories.value or not self.tags.value:
            return None
        return f"{self.host}/{self.repositories.value}:{self.tags.value}"

    def pull(self) -> None:
        """Pull the chosen tag through the engine, showing per-layer bars."""
        from workbench.kernel_ext.progress import TransferTracker
        from workbench.kernel_ext.widgets.progress import TransferProgress

        ref = self.reference
        if ref is None:
            return
        view = TransferProgress(show=False)
        self.progress.children = [view.widget]
        tracker = TransferTracker(view, "pull", ref)
        try:
            with self.client.images.pull(ref) as stream:
                for event in stream:
                    tracker.feed(event)
            tracker.finish()
            self.say(f"pulled {ref}")
        except WorkbenchError as err:
            self.say(f"pull {ref} failed: {err}", error=True)

    def text(self) -> str:
        repos = list(self.repositories.options)
        return f"{self.host}: {len(repos)} repositories\n" + "\n".join(f"  {r}" for r in repos)
