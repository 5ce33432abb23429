"""Paper-reported result rows (CSV files; see leaderboards/SCHEMA.md)."""
