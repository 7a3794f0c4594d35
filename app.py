"""Autoencoder Studio: the dashboard's entry point. Every page is listed here."""

import streamlit as st

st.set_page_config(page_title="Autoencoder Studio", page_icon="🧬", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
]
st.navigation(pages).run()
