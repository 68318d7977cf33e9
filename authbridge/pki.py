"""Certificates for TLS and mutual TLS: a CA, serving and client certificates."""
