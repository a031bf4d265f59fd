"""clinic-outcomes: validate anonymised clinic intervention logs, fit outcome models that match R,
and audit published treatment claims against the data."""

__version__ = "0.1.0"
