"""The public GraphQL API: uploads, job submission, queries and live job updates.

It talks to the rest of the engine only through `jobs` (database, outbox, broker), so it
keeps accepting uploads and jobs while RabbitMQ or the bridge is down.

>>> from graph_api.app import create_app                 # doctest: +SKIP
>>> uvicorn.run(create_app(Settings()), port=8000)        # doctest: +SKIP
"""
