"""Plumbing with no product knowledge: settings, retry, deadlines, logging and metrics, warm-up."""
