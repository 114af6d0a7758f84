"""The suite writes its converted, merged and compiled models under a temporary cache, never the user's."""

from pathlib import Path

from selfrag.models.packaged import cache_root
from tests.conftest import TEST_CACHE


def test_caches_point_into_the_test_cache():
    user_cache = Path.home() / ".cache"
    assert cache_root().is_relative_to(TEST_CACHE) and not cache_root().is_relative_to(user_cache / "selfrag")
    # subprocesses (run_script) inherit the environment, so scripts under test resolve the same cache
    import os

    for variable in ("SELFRAG_CACHE", "XDG_CACHE_HOME", "VLLM_CACHE_ROOT"):
        assert Path(os.environ[variable]).is_relative_to(TEST_CACHE), variable
