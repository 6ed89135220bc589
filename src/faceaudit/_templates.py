"""One Jinja2 environment per template package, shared by the audit and accountability pages.

Every HTML page faceaudit writes is rendered here: autoescape on for every
template (user-supplied text is escaped unless Python marked it ``Markup``),
``StrictUndefined`` (a missing view-model field is an error, never an empty
string), templates loaded from the package's ``templates/`` folder (package
data) on first use and cached with the environment.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jinja2

__all__ = ["environment", "render"]


@functools.cache
def environment(package: str) -> jinja2.Environment:
    """The environment for ``package``'s ``templates/`` folder (built once, on first use)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render(package: str, name: str, filters: Mapping[str, Callable[..., Any]] | None = None,
           **context: Any) -> str:
    """Render template ``name`` of ``package`` with ``context``.

    ``filters``: the package's number formats, registered on its environment (a package
    always passes the same table, so registering again changes nothing).
    """
    env = environment(package)
    if filters:
        env.filters.update(filters)
    return env.get_template(name).render(**context)
