"""Client side of authbridge: credentials profiles, the token cache, HTTP to the issuer."""
