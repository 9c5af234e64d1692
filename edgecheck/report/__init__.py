"""Reports: JUnit properties (properties.py) and the end-of-session terminal table (terminal.py)."""
