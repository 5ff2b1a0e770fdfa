"""HTML pieces of the report: escaping, numbers with their missing-value text, and tables."""
from __future__ import annotations

import html
from typing import Any, Iterable

from taskalign.report.load import is_number


class Raw(str):
    """Markup built in this module; `_cell` does not escape it again."""


def _table(table_id: str, headers: list[str], rows: Iterable[list[Any]], left: tuple[int, ...] = ()) -> str:
    head = "".join(f"<th{' class=t' if i in left else ''}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "\n".join("<tr>" + "".join(_cell(v, i in left) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return (f"<div class='scroll'><table id='{_e(table_id)}'>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}\n</tbody></table></div>\n")


def _cell(value: Any, left: bool) -> str:
    cls = ["t"] if left else []
    if isinstance(value, Raw):
        text = str(value)
    else:
        text = _e(value)
        if text == "n/a":
            cls.append("na")
    attr = f" class='{' '.join(cls)}'" if cls else ""
    return f"<td{attr}>{text}</td>"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, fmt: str = ".4g") -> str:
    return format(x, fmt) if is_number(x) else "n/a"


def _int(x: Any) -> str:
    return str(int(x)) if is_number(x) else "n/a"


def _with_p(value: Any, p: Any) -> str:
    return "n/a" if not is_number(value) else f"{value:.4g} ({_num(p, '.2g')})"


def _ci(ci: Any) -> str:
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return "n/a"
    return f"[{_num(ci[0], '.3f')}, {_num(ci[1], '.3f')}]"


def _mean_ci(s) -> str:
    if not s.finite:
        return "n/a"
    return f"{s.mean:.4g} ± {s.ci95:.2g}" if is_number(s.ci95) else f"{s.mean:.4g} (± n/a)"
