"""The console as served by ``bakeoff ui``: Streamlit runs this file (``streamlit run ui/serve.py``), which
wraps the page router (``app.py``) in the gate of :mod:`bakeoff.ui.gate`, so every request — pages,
Streamlit's websocket and its ``/_stcore`` endpoints — passes the token and host checks first."""

import streamlit as st
from starlette.middleware import Middleware

from bakeoff.ui.gate import ConsoleGate, gate_settings

app = st.App("app.py", middleware=[Middleware(ConsoleGate, **gate_settings())])
