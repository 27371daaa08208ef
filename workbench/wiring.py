"""Builds the engine's parts from settings; shared by the CLI, the TUI and the tests."""

from __future__ import annotations

import os
from collections.abc import Mapping

from providers.registry import EndpointSpec, Registry
from workbench import locations
from workbench.config import Settings


def make_registry(
    settings: Settings, env: Mapping[str, str] | None = None, *, private: bool | None = None
) -> Registry:
    return Registry(
        endpoints=[
            EndpointSpec(name, e.kind, e.base_url, e.api_key_env, tuple(e.models), e.local)
            for name, e in settings.endpoints.items()
        ],
        env=os.environ if env is None else env,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        embedded_context=settings.embedded_context,
        embedded_threads=settings.embedded_threads,
        ollama_num_ctx=settings.ollama_num_ctx,
        models_dir=locations.models_dir(),
        private=settings.private if private is None else private,
    )
