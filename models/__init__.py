"""Bots: the Bot base, a factory, an offline echo bot and an OpenAI-compatible chat bot."""
