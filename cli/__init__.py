"""The `audio-engine` command line: run the services, process locally, talk to a server."""
