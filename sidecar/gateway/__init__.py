"""The local HTTP gateway: the rotating key pool behind the providers' own HTTP APIs.

Tools that already speak the Anthropic Messages API or OpenAI chat completions
(Claude Code, Continue, aider, Cline, opencode, Zed, avante, codecompanion) point
their base URL at ``http://127.0.0.1:8765/{provider}``; the gateway replaces the
credential with one from the pool, rotates on 429/529/401 exactly as the stdio
sidecar's engine does (same :class:`~sidecar.rotation.failover.Failover`, same store), and
streams the provider's bytes back unchanged.

This package is a face (see docs/architecture.md): it translates HTTP to the failover loop and
holds no rotation logic of its own. It is imported only by ``llm-sidecar gateway``:
nothing here, nor aiohttp, loads when the stdio sidecar starts.
"""
