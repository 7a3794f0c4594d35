"""Placeholder: being built."""

import streamlit as st

st.title("generate")
st.info("Coming soon.")
