"""authbridge: self-hosted IAM for Kubernetes, the EKS access flow on any cluster."""

__version__ = "0.1.0"
