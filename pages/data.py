"""Placeholder: being built."""

import streamlit as st

st.title("data")
st.info("Coming soon.")
