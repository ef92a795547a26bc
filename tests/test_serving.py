"""The generated service's shared rate-limit store is tested against a real redis-server
(tests/security/test_serve_uvicorn.py and test_inference_http.py of a generated project);
those tests skip where redis-server is missing, so CI must have it: make test installs it
(scripts/install-system-deps.sh) and, under CI, a missing one fails here."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import TEMPLATE


def test_make_test_installs_redis_server_with_the_system_packages():
    script = (TEMPLATE / "scripts" / "install-system-deps.sh").read_text(encoding="utf-8")
    assert "command -v redis-server" in script and "missing+=(redis-server)" in script


@pytest.mark.skipif(
    os.environ.get("CI") != "true",
    reason="outside CI (CI=true) a missing redis-server only skips the generated Redis tests",
)
def test_ci_has_redis_server_so_the_shared_store_tests_run():
    assert shutil.which("redis-server"), (
        "redis-server is missing in CI: the generated shared rate-limit store tests would "
        "skip; run scripts/install-system-deps.sh (apt-get install redis-server)"
    )


def test_the_generated_tests_skip_with_a_reason_that_says_how_to_install_it():
    support = TEMPLATE / "{{cookiecutter.project_slug}}" / "tests" / "security" / "serve_support.py"
    text = support.read_text(encoding="utf-8")
    assert 'shutil.which("redis-server")' in text and "pytest.skip(REDIS_MISSING)" in text
    assert "sudo apt-get install " in text
