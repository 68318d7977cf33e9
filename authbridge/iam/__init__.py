"""IAM domain values: entities, naming rules, unique ids and access-key secrets (pure)."""
