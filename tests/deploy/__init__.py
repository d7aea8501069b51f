"""Tests of the deployment artifacts (Dockerfile, compose, Fargate)."""
