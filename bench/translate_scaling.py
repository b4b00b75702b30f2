"""Translation time for doubling sizes (docs/translation.md, "Linear time"): doubling the tool
calls (or turns) of a request should double the time, not quadruple it.

Run from the repository root: ``PYTHONPATH=src:. python3 bench/translate_scaling.py``.
"""

from __future__ import annotations

import sys

from tests.translate.scaling import CASES, best_time

SIZES = (2000, 4000, 8000, 16000, 32000)


def main(sizes: tuple[int, ...] = SIZES) -> None:
    for name, (make, translate) in CASES.items():
        print(name)
        prev = None
        for n in sizes:
            body = make(n)
            t = best_time(translate, body)
            growth = f"  x{t / prev:.2f}" if prev else ""
            print(f"  n={n:>6}  {t * 1000:9.2f} ms{growth}")
            prev = t
    sys.stdout.flush()


if __name__ == "__main__":
    main()
