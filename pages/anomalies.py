"""Placeholder: being built."""

import streamlit as st

st.title("anomalies")
st.info("Coming soon.")
