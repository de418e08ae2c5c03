"""Storage helpers shared by every component that keeps an SQLite file."""
