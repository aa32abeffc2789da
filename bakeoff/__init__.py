"""bakeoff: declare few-shot, RAG and fine-tuned candidates in one YAML recipe, run them, compare honestly."""

__version__ = "0.1.0"
__all__ = ["__version__"]
