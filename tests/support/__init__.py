"""Helpers shared by several test tiers (no tests in here)."""
