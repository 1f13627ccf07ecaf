"""GPU backends for ``engines.runtime`` (imported lazily: none of them is needed on a CPU-only machine)."""
