"""The ``dragoman[syftbox]`` extra is installed wherever these tests must run (CI)."""

from __future__ import annotations

import pytest

from dragoman.syftbox import INSTALL, missing_libraries


@pytest.mark.syftbox
def test_the_syftbox_extra_is_installed() -> None:
    missing = missing_libraries()
    if missing:
        pytest.skip(f"SyftBox tests not collected: {', '.join(missing)} missing ({INSTALL})")
