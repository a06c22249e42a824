"""The model report as Markdown (``report.md``), for review boards and ethics committees.

Same sections as ``report.html`` (model card, data, performance, explanations, fairness, the
TRIPOD+AI checklist, ...), rendered from the same section builders, so the two never
disagree. Figures stay in report.html (Markdown viewers rarely show inline images): each is
named where it stands. Placeholders the study team must complete are marked
``**[To complete]**`` so they can be found and filled in a word processor.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from pathlib import Path

from markupsafe import Markup

import permed
from permed.report._html import (
    Block,
    Code,
    Figures,
    Note,
    Paragraph,
    Section,
    Table,
    _header,
    build_sections,
    load_run,
)

__all__ = ["render_markdown", "write_markdown"]

_TODO = re.compile(r'<span class="todo">\s*To complete by the study team:\s*(.*?)</span>', re.S)
_TAG = re.compile(r"<[^>]+>")
TODO_MARK = "**[To complete]**"


def _text(value: object) -> str:
    """Plain text of a cell or paragraph: tags removed, entities decoded, one line."""
    text = str(value)
    if isinstance(value, Markup):
        text = _TODO.sub(lambda m: f"{TODO_MARK} {m.group(1)}", text)
        text = html.unescape(_TAG.sub("", text))
    return " ".join(text.split())


def _cell(value: object) -> str:
    return _text(value).replace("|", "\\|") or " "


def _table(block: Table) -> list[str]:
    width = max([len(block.header), *(len(r) for r in block.rows)], default=0)
    if not width:
        return []
    header = list(block.header) + [""] * (width - len(block.header))
    if not any(str(h) for h in header):
        header = ["Item", "Value"] + [""] * (width - 2) if width >= 2 else ["Item"]
    lines = [f"*{_text(block.caption)}*", ""] if block.caption else []
    lines.append("| " + " | ".join(_cell(h) for h in header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in block.rows:
        cells = list(row) + [""] * (width - len(row))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _note(block: Note) -> list[str]:
    title = f"**{_text(block.title)}** " if block.title else ""
    lines = [f"> {title}{_text(block.text)}"]
    lines += [f"> - {_text(item)}" for item in block.items]
    return lines


def _block(block: Block) -> list[str]:
    if isinstance(block, Paragraph):
        return [_text(block.text)]
    if isinstance(block, Note):
        return _note(block)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figures):
        return [f"- *Figure (in report.html): {_text(f.alt)}. {_text(f.caption)}*".rstrip()
                for f in block.items]
    if isinstance(block, Code):
        return ["```", block.text, "```"]
    return []


def _section(section: Section) -> list[str]:
    lines = [f'<a id="{section.id}"></a>', "", f"## {_text(section.title)}", ""]
    for block in section.blocks:
        rendered = _block(block)
        if rendered:
            lines += [*rendered, ""]
    return lines


def render_markdown(run_dir: str | os.PathLike[str]) -> str:
    """Render the report of a run directory as one Markdown document.

    Parameters
    ----------
    run_dir : str or path-like
        A directory written by ``permed train`` (or ``permed evaluate``).

    Returns
    -------
    str
        Markdown with a title, the summary, a table of contents and one ``##`` heading per
        section (each preceded by an anchor named as in report.html).

    Raises
    ------
    BundleError
        When ``run_dir`` or its ``metrics.json`` is missing or unreadable.
    """
    run = load_run(run_dir)
    if "recalibration" in run.metrics:  # permed recalibrate: its own page, as in report.html
        from permed.report._recalibration import recalibration_page

        header, sections = recalibration_page(run)
    else:
        header, sections = _header(run), build_sections(run)
    lines = [f"# {_text(header['title'])}", ""]
    lines += [f"- **{_text(k)}**: {_text(v)}" for k, v in header["facts"]] + [""]
    lines += [_text(header["summary"]), ""]
    for problem in header["problems"]:
        lines += [f"> **Incomplete run directory:** {_text(problem)}", ""]
    if header["warnings"]:
        lines += ["> **Warnings:**"] + [f"> - {_text(w)}" for w in header["warnings"]] + [""]
    if header["flags"]:
        lines += ["> **Fairness flags:**"] + [f"> - {_text(f)}" for f in header["flags"]] + [""]
    lines += ["## Contents", ""]
    lines += [f"{i}. [{_text(s.title)}](#{s.id})" for i, s in enumerate(sections, 1)] + [""]
    for section in sections:
        lines += _section(section)
    lines.append(f"*Written by permed {permed.__version__} from the files of the run directory; "
                 f"items marked {TODO_MARK} are for the study team to write.*")
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(run_dir: str | os.PathLike[str]) -> Path:
    """Render the Markdown report and write it to ``run_dir/report.md`` atomically.

    Parameters
    ----------
    run_dir : str or path-like
        A run directory (see :func:`render_markdown`).

    Returns
    -------
    pathlib.Path
        The path of ``report.md``.
    """
    text = render_markdown(run_dir)
    target = Path(run_dir) / "report.md"
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".md.tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
