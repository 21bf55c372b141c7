"""The state: the decrypted projection of the log in its encrypted file, and the queries every front end asks of it."""
