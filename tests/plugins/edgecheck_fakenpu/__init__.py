"""A fake NPU vendor: its artifact format, backend, recipe and an energy check (see ../README.md)."""
