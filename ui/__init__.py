"""The Streamlit console, imported as ``bakeoff.ui`` (reads runs; never trains in-process)."""
