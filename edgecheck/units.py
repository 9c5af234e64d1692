"""Units edgecheck's figures and limits are written in, defined once."""

MIB = 2**20  # bytes in a MiB: sizes, memory figures and data-file limits are all in MiB
