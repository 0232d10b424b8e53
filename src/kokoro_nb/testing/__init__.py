"""Test doubles: synthetic corpora and a fake OpenAI-compatible server (like ``numpy.testing``)."""
