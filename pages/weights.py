"""Placeholder: being built."""

import streamlit as st

st.title("weights")
st.info("Coming soon.")
