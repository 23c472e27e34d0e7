"""Auditor checks that trust only the chain, the public log and the policy."""
