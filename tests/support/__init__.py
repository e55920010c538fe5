"""Test helpers: process clusters, HTTP helpers, waiting on conditions."""
