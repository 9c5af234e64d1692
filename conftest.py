"""Root conftest: edgecheck's own test suite drives real pytest sessions through `pytester`."""

pytest_plugins = ["pytester"]
