"""Placeholder: being built."""

import streamlit as st

st.title("latent")
st.info("Coming soon.")
