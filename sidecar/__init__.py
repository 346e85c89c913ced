"""llm-sidecar: one stdio process that holds LLM credentials for every editor.

Heavy modules (the server, httpx, providers) are imported lazily by whoever
needs them: editors spawn us often and start-up time matters.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
