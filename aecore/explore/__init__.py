"""The engine side of the explore pages: one module per page or concern."""
