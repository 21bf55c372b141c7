"""The served site: one ASGI app (Datasette + the API), its gate, its login, the live vault and Datasette's view of the state file."""
