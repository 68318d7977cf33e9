"""Issuing tokens: GetSessionToken and AssumeRole over the store and the key set."""
