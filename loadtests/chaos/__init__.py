"""The fault suite (``make chaos``): real processes on 127.0.0.1 broken on purpose, and what the
gateway's clients see, judged against issue 9's targets. See the README's "Fault suite"."""
