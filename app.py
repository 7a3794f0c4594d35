"""Autoencoder Studio: the dashboard's entry point. Every page is listed here."""

import streamlit as st

from pages._job_panel import keep_my_jobs_alive

st.set_page_config(page_title="Autoencoder Studio", page_icon="🧬", layout="wide")

# st.navigation turns off the automatic pages/ discovery, so this list is the
# whole app; pages/_common.py is a helper module, not a page.
pages = {
    "Start": [
        st.Page("pages/home.py", title="Home", icon="🏠", default=True),
        st.Page("pages/train.py", title="Train", icon="🏋️"),
        st.Page("pages/data.py", title="Data", icon="🗂️"),
    ],
    "Explore a model": [
        st.Page("pages/reconstruct.py", title="Reconstruct", icon="🔁"),
        st.Page("pages/latent.py", title="Latent space", icon="🌌"),
        st.Page("pages/generate.py", title="Generate", icon="🎛️"),
        st.Page("pages/weights.py", title="Weights", icon="🧩"),
        st.Page("pages/anomalies.py", title="Anomalies", icon="🚨"),
        st.Page("pages/sequences.py", title="Sequences", icon="🔤"),
    ],
    "Compare": [st.Page("pages/compare.py", title="Compare", icon="📊")],
}
page = st.navigation(pages)
keep_my_jobs_alive()  # a run lives while the session that started it does (see pages/_common.py)
page.run()
