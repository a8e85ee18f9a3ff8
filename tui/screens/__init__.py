"""Modal screens: confirm, add job, help."""
