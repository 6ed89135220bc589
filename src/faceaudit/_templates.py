"""One Jinja2 environment per template package, shared by the audit and accountability pages.

Every HTML page faceaudit writes is rendered here: autoescape on for every
template (user-supplied text is escaped unless Python marked it ``Markup``),
``StrictUndefined`` (a missing view-model field is an error, never an empty
string), templates loaded from package data on first use and cached.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Mapping, Optional

import jinja2

__all__ = ["environment", "render"]


@functools.lru_cache(maxsize=None)
def environment(package: str) -> jinja2.Environment:
    """The environment for ``package``'s ``templates/`` folder (built once, on first use)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )
    return env


def render(package: str, name: str, filters: Optional[Mapping[str, Callable[..., Any]]] = None,
           **context: Any) -> str:
    """Render template ``name`` of ``package`` with ``context`` (and extra ``filters`` for its formatting)."""
    env = environment(package)
    if filters:
        missing: Dict[str, Callable[..., Any]] = {k: v for k, v in filters.items() if env.filters.get(k) is not v}
        env.filters.update(missing)
    return env.get_template(name).render(**context)
