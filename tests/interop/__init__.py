"""Tests against a real distribution registry (Debian's ``docker-registry``) on the test Redis."""
