"""The store: everything that touches the vault file — schema and migrations, keys, codec, the log and its one
writer, attachments, tokens, batches, the seal, verification."""
