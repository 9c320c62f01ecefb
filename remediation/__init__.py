"""Runbooks and the closed-loop remediation executor (arrives with the remediation issue)."""
