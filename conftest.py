"""Repository-wide pytest configuration: quiet and offline before anything imports a library."""

from core.offline import apply_offline_env

apply_offline_env(cache_dir=".tollgate")
