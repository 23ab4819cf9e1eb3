"""Fit an email under its size budget: show its longest entries as summaries, then as titles.

The rule is greedy: shorten one entry at a time, longest body first, and stop at the first
mix of modes whose HTML fits (see `mixes`). Rendering and inlining every step was most of
a newsletter's cost: an issue of 15 long entries took up to 16 full renderings.

Each entry's block in the inlined HTML is the same bytes whatever its neighbours show: the
built-in layout's CSS selects by tag, class and ancestor only, so css-inline styles an
element by itself and the elements around it, never by its siblings; and entry bodies are
balanced, sanitised HTML that cannot spill into the next block. So one rendering with every
entry in one mode gives each entry's block in that mode, and the HTML of a mix is the page
around the blocks with the mix's blocks put in. `fit` predicts each step's size that way,
and makes the email of the step it chooses from the same blocks, with `assemble`; its HTML
must be the prediction byte for byte. Without `assemble`, or when it cannot, the chosen step
is rendered for real and compared. HTML it cannot cut into one block per entry, or any
difference, falls back to rendering every step, as `fit_slowly` does. tests/test_budget.py
checks the prediction of every step, and that fit chooses what fit_slowly chooses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

# Where an entry's block starts and the blocks end, as the built-in email templates write them.
BLOCK_START = '<tr>\n<td class="entry" id="'
FOOTER = '<td class="footer"'


def mixes(order: Sequence[str], modes: Sequence[str]) -> list[dict[str, str]]:
    """Return the mixes the greedy rule tries, in its order: every entry in modes[0], then the
    entries (ids, in `order`) one by one in modes[1], then one by one in modes[2], ...
    """
    tried: list[dict[str, str]] = [{}]
    for mode in modes[1:]:
        for entry_id in order:
            tried.append({**tried[-1], entry_id: mode})
    return tried


def fits(html: str, budget: int) -> bool:
    return len(html.encode("utf-8")) <= budget


def fit_slowly(tried: list[dict[str, str]], render: Callable, budget: int) -> tuple[dict[str, str], object, str]:
    """Render each mix in turn; return the first that fits (its modes, email and HTML), else the last."""
    for modes in tried:
        email = render(modes)
        html = email.html()
        if fits(html, budget):
            break
    return modes, email, html


@dataclass(frozen=True)
class Cut:
    """An email's HTML cut into the page around the entry blocks and the blocks, in page order."""

    head: str
    blocks: tuple[str, ...]
    tail: str

    def sizes(self) -> list[int]:
        return [len(block.encode("utf-8")) for block in self.blocks]


def cut(html: str, count: int) -> Cut | None:
    """Cut HTML into its `count` entry blocks (a section heading goes with the block before it);
    None if it does not have exactly that many, as when a body holds a look-alike of one."""
    starts = []
    position = html.find(BLOCK_START)
    while position != -1:
        starts.append(position)
        position = html.find(BLOCK_START, position + 1)
    end = html.rfind(FOOTER)
    if len(starts) != count or not starts or end < starts[-1]:
        return None
    bounds = [*starts, end]
    return Cut(html[:starts[0]], tuple(html[a:b] for a, b in zip(bounds, bounds[1:])), html[end:])


# (email of the step before a stage, email of its last step, ids shown in the stage's mode,
# the chosen mix) -> that mix's email, or None if it cannot be put together.
Assemble = Callable[[object, object, set, dict], object]


def fit(page_order: Sequence[str], order: Sequence[str], modes: Sequence[str], render: Callable,
        budget: int, assemble: Assemble | None = None) -> tuple[dict[str, str], object, str]:
    """Return what fit_slowly(mixes(order, modes), render, budget) returns, rendering once per mode,
    not once per step (and once more for the mix chosen, unless `assemble` makes its email).

    `page_order` is the entry ids in the order their blocks appear in the email.
    """
    tried = mixes(order, modes)
    count = len(order)
    email, html = _rendered(render, tried[0])
    if fits(html, budget):
        return tried[0], email, html
    before = cut(html, count)
    if count < 2 or before is None or len(set(order)) != count or sorted(page_order) != sorted(order):
        return fit_slowly(tried[1:], render, budget)
    for stage in range(1, len(modes)):
        first = (stage - 1) * count + 1  # this stage's first step; its last shows every entry in modes[stage]
        previous = email
        email, html = _rendered(render, tried[stage * count])
        after = cut(html, count)
        if after is None or (before.head, before.tail) != (after.head, after.tail):
            return fit_slowly(tried[first:], render, budget)
        chosen = _first_fitting(before, after, page_order, order[:count - 1], budget)
        if chosen is not None:
            mix, shortened = tried[first + chosen], set(order[:chosen + 1])
            expected = predicted(before, after, page_order, shortened)
            made = assemble(previous, email, shortened, mix) if assemble else None
            if made is not None and made.html() == expected:
                return mix, made, expected
            email, html = _rendered(render, mix)
            if html == expected:
                return mix, email, html
            return fit_slowly(tried[1:], render, budget)  # not as predicted: trust no prediction, take every step
        if fits(html, budget):
            return tried[stage * count], email, html
        before = after
    return tried[-1], email, html


def _rendered(render: Callable, modes: dict[str, str]) -> tuple[object, str]:
    email = render(modes)
    return email, email.html()


def _first_fitting(before: Cut, after: Cut, page_order: Sequence[str], shortened: Sequence[str],
                   budget: int) -> int | None:
    """Return i for the first step that fits with the first i + 1 of `shortened` in the new mode, or None."""
    position = {entry_id: index for index, entry_id in enumerate(page_order)}
    old, new = before.sizes(), after.sizes()
    size = len(before.head.encode("utf-8")) + sum(old) + len(before.tail.encode("utf-8"))
    for i, entry_id in enumerate(shortened):
        size += new[position[entry_id]] - old[position[entry_id]]
        if size <= budget:
            return i
    return None


def predicted(before: Cut, after: Cut, page_order: Sequence[str], shortened: set[str]) -> str:
    """Return the HTML of the mix with `shortened` in the new mode, put together from the blocks."""
    blocks = (a if entry_id in shortened else b for entry_id, a, b in zip(page_order, after.blocks, before.blocks))
    return before.head + "".join(blocks) + before.tail
