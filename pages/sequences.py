"""Placeholder: being built."""

import streamlit as st

st.title("sequences")
st.info("Coming soon.")
