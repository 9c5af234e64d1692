"""Vendors: one folder each (backend, recipes, format, checks, operator table, tool environment), plugged into the core through entry points as a third party would."""
