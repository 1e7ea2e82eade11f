"""Worked examples (not part of the installed package); see docs/remote.md."""
