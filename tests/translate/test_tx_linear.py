"""Translation is linear in the conversation (audit #4; docs/translation.md, "Linear time"):
four times the tool calls (or turns) take about four times as long, not sixteen.

Timings are relative (n against 4n, best of three runs each), with a wide margin: linear gives
a ratio near 4, the quadratic code it replaces gave 10-16 at these sizes."""

from __future__ import annotations

import pytest
from tests.translate.scaling import CASES, best_time

N = 3000
#: a ratio well below quadratic (16) and above linear (4), for a loaded machine
MAX_RATIO = 10.0


@pytest.mark.parametrize("case", sorted(CASES))
def test_translation_time_grows_linearly(case: str) -> None:
    make, translate = CASES[case]
    small, big = make(N), make(4 * N)
    translate(small)  # warm-up
    t_small = best_time(translate, small)
    t_big = best_time(translate, big)
    ratio = t_big / t_small
    assert ratio < MAX_RATIO, f"{case}: {t_small:.4f}s -> {t_big:.4f}s (x{ratio:.1f})"
