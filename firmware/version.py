# The firmware version that `info` reports. Bump it with every change that reaches a board.
VERSION = "0.5.0"
