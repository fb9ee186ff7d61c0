"""mkdocs hook (mkdocs.yml `hooks:`): links from a page to a file of the repository outside docs/
(NOTICE, benchmarks/RESULTS.md, uv.lock, ...) work on GitHub but are not pages of the site. This
hook checks that each such file exists (a missing one is a warning, so `mkdocs build --strict`
fails) and turns the link into a link to the repository when mkdocs.yml sets `repo_url`, else into
its text with the repository path beside it. Runs offline, like the rest of the build."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.veritag")

_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    root = docs_dir.parent
    source = Path(page.file.abs_src_path).parent
    repo_url = (config.get("repo_url") or "").rstrip("/")

    def relink(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        if target.startswith("#") or re.match(r"^[a-z][a-z0-9+.-]*:", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = (source / path).resolve()
        if resolved.is_relative_to(docs_dir):
            return match.group(0)
        if not resolved.is_relative_to(root) or not resolved.exists():
            log.warning(
                "%s links to %s, which is not in the repository", page.file.src_path, target
            )
            return match.group(0)
        rel = resolved.relative_to(root).as_posix()
        if repo_url:
            return f"[{text}]({repo_url}/blob/HEAD/{rel}{'#' + anchor if anchor else ''})"
        return text if text.strip("`") == rel else f"{text} (`{rel}` in the repository)"

    out, in_code = [], False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        out.append(line if in_code else _LINK.sub(relink, line))
    return "\n".join(out)
