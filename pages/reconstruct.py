"""Placeholder: being built."""

import streamlit as st

st.title("reconstruct")
st.info("Coming soon.")
